"""Objections (异议处理) and credit repair (信用修复): how a finding is disputed or repaired."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import audit, clock
from app.errors import InvalidTransition, NotFound, ValidationFailed
from app.parties.models import Actor, Party
from credit import blacklisting, ledger, services
from credit.catalog import minimum_publicity, points_for
from credit.errors import (
    CreditEventNotFound,
    ObjectionPending,
    RepairNotEligible,
    RepairPending,
)
from credit.models import (
    BlacklistEntry,
    CreditEntry,
    DecisionStatus,
    EntryAction,
    Objection,
    Repair,
    RepairEvent,
)


def _own_finding(session: Session, event_id: uuid.UUID, party: Party) -> ledger.Finding:
    """An effective finding about the party; another party's event is not revealed (404)."""
    entry = session.scalar(select(CreditEntry).where(CreditEntry.id == event_id))
    if entry is None or entry.party_id != party.id:
        raise CreditEventNotFound()
    finding = ledger.party_findings(session, party.id).get(event_id)
    if finding is None or not finding.effective or finding.entry.points >= 0:
        raise InvalidTransition("Only an effective negative finding can be disputed or "
                                "repaired.")
    return finding


def object_to_event(session: Session, *, event_id: uuid.UUID, party: Party, reason: str,
                    evidence_ref: str | None) -> Objection:
    """The affected party disputes a finding; it shows as disputed until decided."""
    _own_finding(session, event_id, party)
    # The profile lock serializes the party's objections, so two cannot both see none pending.
    services.lock_profile(session, party.id)
    pending = session.scalar(select(Objection).where(
        Objection.event_id == event_id, Objection.status == DecisionStatus.PENDING))
    if pending is not None:
        raise ObjectionPending()
    objection = Objection(event_id=event_id, party_id=party.id, reason=reason,
                          evidence_ref=evidence_ref)
    session.add(objection)
    session.flush()
    audit.record(session, actor_id=party.id, action="credit.objection_filed", subject=objection,
                 details={"event_id": str(event_id)})
    return objection


def decide_objection(session: Session, *, objection_id: uuid.UUID, regulator: Actor,
                     decision: DecisionStatus, note: str,
                     correction: dict[str, Any] | None = None) -> Objection:
    """Upheld: the finding stands. Revoked: its effect is removed. Corrected: replaced."""
    # Row-locked and re-read: of two concurrent decisions only the first finds it pending.
    objection = session.get(Objection, objection_id, with_for_update=True,
                            populate_existing=True)
    if objection is None:
        raise NotFound("No such objection.")
    if objection.status is not DecisionStatus.PENDING:
        raise InvalidTransition("The objection was already decided.")
    if decision is DecisionStatus.CORRECTED and not correction:
        raise ValidationFailed("A correction names what changes: kind, severity or description.",
                               errors={"correction": ["Required when the decision is corrected."]})
    profile = services.lock_profile(session, objection.party_id)
    now = clock.now()  # read under the lock: no later change to the party's record exists yet
    old = session.scalar(select(CreditEntry).where(CreditEntry.id == objection.event_id))
    assert old is not None
    if decision is DecisionStatus.REVOKED:
        ledger.append(session, CreditEntry(
            party_id=old.party_id, action=EntryAction.REVOKED, kind=old.kind,
            severity=old.severity, points=0, description=f"Revoked on objection: {note}",
            evidence_ref=objection.evidence_ref, refers_to=old.id, recorded_by=regulator.id,
            occurred_at=now))
        blacklisting.end_findings_effects(session, party_id=old.party_id, event_ids={old.id},
                                          reason="revoked", at=now)
    elif decision is DecisionStatus.CORRECTED:
        objection.correction_id = _correct(session, old, regulator, note, correction or {},
                                           now)
    # Whatever the outcome, the level (and a level-D listing) follows the revised record.
    services.refresh_standing(session, profile, now)
    objection.status, objection.note = decision, note
    objection.decided_by, objection.decided_at = regulator.id, now
    audit.record(session, actor_id=regulator.id, action="credit.objection_decided",
                 subject=objection, details={"event_id": str(old.id), "decision": decision.value,
                                             "score": profile.score})
    return objection


def _correct(session: Session, old: CreditEntry, regulator: Actor, note: str,
             correction: dict[str, Any], now: datetime) -> uuid.UUID:
    kind = services.event_kind(correction.get("kind") or old.kind)
    severity = correction.get("severity") or old.severity
    # An objection can only soften or restate a finding, never turn it into a reward: a
    # positive kind would add incentive points and no longer be disputable or repairable.
    if kind.positive:
        raise ValidationFailed("A correction keeps the finding negative.",
                               errors={"kind": ["Must be a kind of negative finding."]})
    services.check_severity(kind, severity)  # the rule record_event applies
    blacklisting.end_findings_effects(session, party_id=old.party_id, event_ids={old.id},
                                      reason="corrected", at=now)
    corrected = ledger.append(session, CreditEntry(
        party_id=old.party_id, action=EntryAction.CORRECTED, kind=kind.code, severity=severity,
        points=points_for(kind, severity),
        description=correction.get("description") or f"{old.description} (corrected: {note})",
        evidence_ref=old.evidence_ref, refers_to=old.id, recorded_by=regulator.id,
        occurred_at=now))
    services.apply_consequences(session, corrected, kind)
    return corrected.id


def _ineligibility(session: Session, finding: ledger.Finding,
                   now: datetime) -> tuple[str, dict[str, Any]] | None:
    """Why the finding cannot be repaired now (with details for the problem), or None."""
    kind = services.event_kind(finding.entry.kind)
    if not kind.repairable:
        return f"{kind.code} findings cannot be repaired.", {}
    # Repair follows fulfilling one's obligations (NDRC Order No. 58): every fine or deposit
    # the party still owes blocks it, whichever finding it was imposed for.
    unpaid = services.unpaid_penalties(session, finding.entry.party_id)
    if unpaid:
        owed = unpaid[0]
        return (f"The {owed.kind.value} of {owed.amount} fen imposed on "
                f"{owed.starts_at.date().isoformat()} is unpaid.",
                {"penalty_id": str(owed.id)})
    until = _publicity_minimum_until(session, finding)
    if now < until:
        return (f"The minimum publicity period is not over until {until.isoformat()}.",
                {"eligible_from": until.isoformat()})
    return None


def _publicity_minimum_until(session: Session, finding: ledger.Finding) -> datetime:
    # Every finding is publicised for its kind's minimum from when it was found (a correction
    # keeps that date), blacklisted or not; a blacklisting decided on it may carry a longer
    # minimum (its longest penalty), which then applies too.
    until = finding.since + minimum_publicity(services.event_kind(finding.entry.kind))
    listings = session.scalars(select(BlacklistEntry.publicity_min_until).where(
        BlacklistEntry.event_id == finding.entry.id, BlacklistEntry.ended_at.is_(None)))
    return max([until, *listings])


def _refuse_if_ineligible(session: Session, finding: ledger.Finding, now: datetime) -> None:
    refusal = _ineligibility(session, finding, now)
    if refusal is not None:
        reason, details = refusal
        raise RepairNotEligible(reason, event_id=str(finding.entry.id), **details)


def apply_for_repair(session: Session, *, party: Party, event_ids: list[uuid.UUID],
                     measures: str, commitment: bool, evidence_ref: str | None) -> Repair:
    """Apply for repair of some findings, with the measures taken and a signed commitment."""
    if not commitment:
        raise ValidationFailed("A written commitment is required.",
                               errors={"commitment": ["Must be true."]})
    now = clock.now()
    for event_id in dict.fromkeys(event_ids):
        _refuse_if_ineligible(session, _own_finding(session, event_id, party), now)
    repair = Repair(party_id=party.id, measures=measures, commitment=commitment,
                    evidence_ref=evidence_ref,
                    events=[RepairEvent(event_id=e, pending=True)
                            for e in dict.fromkeys(event_ids)])
    session.add(repair)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise RepairPending("One of these findings already has a pending repair.") from None
    audit.record(session, actor_id=party.id, action="credit.repair_applied", subject=repair,
                 details={"event_ids": [str(e) for e in repair.event_ids]})
    return repair


def decide_repair(session: Session, *, repair_id: uuid.UUID, regulator: Actor,
                  decision: DecisionStatus, note: str) -> Repair:
    """Approve (publicity ends, penalties lifted, score restored; the findings stay, marked
    repaired) or reject a repair application."""
    # Row-locked and re-read: of two concurrent decisions only the first finds it pending.
    repair = session.get(Repair, repair_id, with_for_update=True, populate_existing=True)
    if repair is None:
        raise NotFound("No such repair application.")
    if repair.status is not DecisionStatus.PENDING:
        raise InvalidTransition("The repair application was already decided.")
    profile = services.lock_profile(session, repair.party_id)
    now = clock.now()  # read under the lock: no later change to the party's record exists yet
    if decision is DecisionStatus.APPROVED:
        findings = ledger.party_findings(session, repair.party_id)
        # Eligibility may have lapsed since the application (a new fine, say): check again.
        for event_id in repair.event_ids:
            if findings[event_id].effective:
                _refuse_if_ineligible(session, findings[event_id], now)
        for event_id in repair.event_ids:
            finding = findings[event_id]
            if finding.effective:
                ledger.append(session, CreditEntry(
                    party_id=repair.party_id, action=EntryAction.REPAIRED,
                    kind=finding.entry.kind, severity=finding.entry.severity, points=0,
                    description=f"Credit repaired: {note}", evidence_ref=repair.evidence_ref,
                    refers_to=event_id, recorded_by=regulator.id, occurred_at=now))
        blacklisting.end_findings_effects(session, party_id=repair.party_id,
                                          event_ids=set(repair.event_ids), reason="repaired",
                                          at=now)
    services.refresh_standing(session, profile, now)
    repair.status, repair.note = decision, note
    repair.decided_by, repair.decided_at = regulator.id, now
    for link in repair.events:
        link.pending = None
    audit.record(session, actor_id=regulator.id, action="credit.repair_decided", subject=repair,
                 details={"decision": decision.value, "score": profile.score})
    return repair
