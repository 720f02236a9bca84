"""Use cases of the admission lists: add, supersede, retire, list, and the dry run."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app import audit, clock
from app.errors import InvalidTransition
from app.parties.models import Actor
from listings import admission
from listings.errors import InvalidRule, RuleNotFound
from listings.models import AdmissionList, AdmissionRule

CRITERIA = ("categories", "keywords", "classifications", "contains_personal_info", "territory")


def _has_criteria(body: dict[str, Any]) -> bool:
    return any(body.get(name) not in (None, []) for name in CRITERIA)


def create_rule(session: Session, *, actor: Actor, body: dict[str, Any]) -> AdmissionRule:
    """Add a rule, or a new version of one (`supersedes`): the old version is retired."""
    if not _has_criteria(body):
        raise InvalidRule(errors={"categories": [
            "Give at least one criterion: categories, keywords, classifications, "
            "contains_personal_info or territory."]})
    now = clock.now()
    effective_from = body.get("effective_from") or now
    effective_to = body.get("effective_to")
    if effective_to is not None and effective_to <= effective_from:
        raise InvalidRule("effective_to must be after effective_from.",
                        errors={"effective_to": ["Must be after effective_from."]})
    rule_key, version = uuid.uuid4(), 1
    if body.get("supersedes"):
        old = _rule(session, body["supersedes"])
        if old.retired_at is not None:
            raise InvalidTransition("A retired rule cannot be superseded.")
        old.retire(now)
        rule_key, version = old.rule_key, old.version + 1
    rule = AdmissionRule(
        rule_key=rule_key, version=version, admission_list=body["admission_list"],
        name=body["name"], reason=body["reason"], categories=list(body["categories"]),
        keywords=list(body["keywords"]),
        classifications=[c.value for c in body["classifications"]],
        contains_personal_info=body["contains_personal_info"], territory=body["territory"],
        effective_from=effective_from, effective_to=effective_to, created_by=actor.id)
    session.add(rule)
    session.flush()
    audit.record(session, actor_id=actor.id, action="admission_rule.created", subject=rule,
                 details={"rule_key": str(rule.rule_key), "version": rule.version,
                          "list": rule.admission_list.value, "name": rule.name,
                          "supersedes": str(body["supersedes"]) if body.get("supersedes")
                          else None})
    return rule


def _rule(session: Session, rule_id: uuid.UUID) -> AdmissionRule:
    # Locked: two operators superseding or retiring one rule at once are serialized, so the
    # second sees it retired (409) instead of racing to the same version (a unique violation).
    rule = session.get(AdmissionRule, rule_id, with_for_update=True, populate_existing=True)
    if rule is None:
        raise RuleNotFound()
    return rule


def retire_rule(session: Session, *, rule_id: uuid.UUID, actor: Actor) -> None:
    """Retire a rule: it stops applying but stays in the history (never deleted)."""
    rule = _rule(session, rule_id)
    if rule.retired_at is None:
        rule.retire(clock.now())
        audit.record(session, actor_id=actor.id, action="admission_rule.retired", subject=rule,
                     details={"rule_key": str(rule.rule_key), "version": rule.version})


def rules_query(*, admission_list: AdmissionList | None = None,
                include_retired: bool = False) -> Select:
    """Rules not retired (or all, with history), oldest first."""
    stmt = select(AdmissionRule).order_by(AdmissionRule.created_at, AdmissionRule.id)
    if admission_list is not None:
        stmt = stmt.where(AdmissionRule.admission_list == admission_list)
    if not include_retired:
        stmt = stmt.where(AdmissionRule.retired_at.is_(None))
    return stmt


def check_admission(session: Session, *, body: dict[str, Any]) -> admission.AdmissionResult:
    """The dry run: what admission would decide for this listing body now."""
    return admission.evaluate(admission.facts_of_body(body),
                              admission.rules_in_force(session, clock.now()))
