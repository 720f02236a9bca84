"""Objections (异议处理) and credit repair (信用修复) through the HTTP API.

A finding can be disputed by the party it is about and decided by a regulator (upheld,
revoked, corrected); a party can apply for repair once the minimum publicity period is over,
its fines are paid and the kind is repairable. Every outcome is a new entry on the credit
ledger, which stays valid, and every step is written to the audit trail.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import clock
from app.audit import AuditEntry
from app.errors import DomainError
from app.extensions import db
from app.parties.models import Role
from credit import recompute, services
from credit.models import CreditEntry
from tests.factories import Member, make_member
from tests.support import problem_code, race, seal_log

CREDIT = "/api/v1/credit"


# --- helpers ---------------------------------------------------------------------------------

def record(client: FlaskClient, recorder: Member, party: Member, *, kind: str = "lost_dispute",
           severity: str = "severe") -> dict[str, Any]:
    response = client.post(f"{CREDIT}/events", headers=recorder.headers, json={
        "party_id": party.id, "kind": kind, "severity": severity,
        "description": f"{kind} found by inspection", "evidence_ref": "case-001"})
    assert response.status_code == 201, response.json
    return response.json


def credit_file(client: FlaskClient, viewer: Member, party: Member) -> dict[str, Any]:
    response = client.get(f"{CREDIT}/parties/{party.id}", headers=viewer.headers)
    assert response.status_code == 200, response.json
    return response.json


def event_in(file: dict[str, Any], event_id: str) -> dict[str, Any]:
    return next(event for event in file["events"] if event["id"] == event_id)


def blacklist(client: FlaskClient, viewer: Member | None = None) -> list[dict[str, Any]]:
    response = client.get(f"{CREDIT}/blacklist", headers=viewer.headers if viewer else {})
    assert response.status_code == 200, response.json
    return response.json


def object_to(client: FlaskClient, party: Member, event_id: str, **overrides: Any) -> TestResponse:
    body = {"reason": "The delivery was on time; the buyer misread the log.",
            "evidence_ref": "evidence/objection-1.pdf", **overrides}
    return client.post(f"{CREDIT}/events/{event_id}/objections", headers=party.headers,
                       json=body)


def decide_objection(client: FlaskClient, decider: Member, objection_id: str, decision: str,
                     **extra: Any) -> TestResponse:
    return client.post(f"{CREDIT}/objections/{objection_id}/decide", headers=decider.headers,
                       json={"decision": decision, "note": f"Decided: {decision}", **extra})


def apply_for_repair(client: FlaskClient, party: Member, event_ids: list[str],
                     **overrides: Any) -> TestResponse:
    body = {"event_ids": event_ids, "measures": "Refunded the buyer and retrained staff.",
            "commitment": True, "evidence_ref": "evidence/repair-1.pdf", **overrides}
    return client.post(f"{CREDIT}/repairs", headers=party.headers, json=body)


def decide_repair(client: FlaskClient, decider: Member, repair_id: str,
                  decision: str) -> TestResponse:
    return client.post(f"{CREDIT}/repairs/{repair_id}/decide", headers=decider.headers,
                       json={"decision": decision, "note": f"Decided: {decision}"})


def impose_fine(client: FlaskClient, regulator: Member, party: Member,
                event_id: str) -> dict[str, Any]:
    response = client.post(f"{CREDIT}/penalties", headers=regulator.headers, json={
        "party_id": party.id, "kind": "fine", "days": 30, "amount": 500_000,
        "event_id": event_id})
    assert response.status_code == 201, response.json
    return response.json


def move_past_minimum_publicity(client: FlaskClient, regulator: Member, party: Member) -> None:
    until = datetime.fromisoformat(credit_file(client, regulator, party)
                                   ["blacklisting"]["publicity_min_until"])
    clock.advance(until - clock.now() + timedelta(minutes=1))


def past_the_minimum_publicity() -> None:
    """Move past the three-month minimum every finding outside the serious categories is
    publicised for before it may be repaired."""
    clock.advance(timedelta(days=91, minutes=1))


def assert_ledger_valid(client: FlaskClient, regulator: Member, entries: int) -> None:
    seal_log()
    report = client.get(f"{CREDIT}/ledger/verify", headers=regulator.headers).json
    assert report == {**report, "valid": True, "entries": entries, "first_bad_entry": None}


def ledger_entries(party: Member) -> list[CreditEntry]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(CreditEntry)
                                   .where(CreditEntry.party_id == party.party.id)
                                   .order_by(CreditEntry.seq)))


def audit_actions(subject_id: str) -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(AuditEntry.action)
                                   .where(AuditEntry.subject_id == subject_id)
                                   .order_by(AuditEntry.id)))


def may_list(party: Member) -> bool:
    try:
        services.ensure_may_list(db.session, party.party.id)
    except DomainError:
        return False
    finally:
        db.session.rollback()
    return True


# --- objections: filing ----------------------------------------------------------------------

def test_the_affected_party_objects_and_the_event_shows_as_disputed(client, regulator,
                                                                    merchant):
    event = record(client, regulator, merchant, kind="data_tampering")

    filed = object_to(client, merchant, event["id"])

    assert filed.status_code == 201, filed.json
    assert filed.json["status"] == "pending"
    assert filed.json["event_id"] == event["id"] and filed.json["party_id"] == merchant.id
    assert filed.json["evidence_ref"] == "evidence/objection-1.pdf"
    assert event_in(credit_file(client, merchant, merchant), event["id"])["disputed"] is True
    assert event_in(credit_file(client, regulator, merchant), event["id"])["disputed"] is True
    [public] = blacklist(client)
    assert public["party_id"] == merchant.id and public["disputed"] is True
    assert blacklist(client, regulator)[0]["disputed"] is True
    assert audit_actions(filed.json["id"]) == ["credit.objection_filed"]


def test_an_undisputed_event_is_not_marked_disputed(client, regulator, merchant):
    event = record(client, regulator, merchant, kind="data_tampering")

    assert event_in(credit_file(client, merchant, merchant), event["id"])["disputed"] is False
    assert blacklist(client)[0]["disputed"] is False


def test_a_party_cannot_object_to_another_partys_event(client, regulator, merchant):
    event = record(client, regulator, merchant, severity="general")
    other = make_member(Role.MERCHANT)

    refused = object_to(client, other, event["id"])

    assert refused.status_code in (403, 404)
    assert problem_code(refused) in ("credit_event_not_found", "forbidden")
    assert event_in(credit_file(client, merchant, merchant), event["id"])["disputed"] is False


def test_the_recorder_cannot_object_on_behalf_of_the_affected_party(client, regulator,
                                                                     merchant):
    event = record(client, regulator, merchant, severity="general")

    refused = object_to(client, regulator, event["id"])

    assert refused.status_code in (403, 404)
    assert event_in(credit_file(client, merchant, merchant), event["id"])["disputed"] is False


def test_objecting_to_an_unknown_event_is_not_found(client, merchant):
    refused = object_to(client, merchant, str(uuid.uuid4()))

    assert refused.status_code == 404
    assert problem_code(refused) == "credit_event_not_found"


def test_an_anonymous_objection_is_unauthorized(client, regulator, merchant):
    event = record(client, regulator, merchant, severity="general")

    refused = client.post(f"{CREDIT}/events/{event['id']}/objections",
                          json={"reason": "Not me", "evidence_ref": None})

    assert refused.status_code == 401
    assert problem_code(refused) == "unauthorized"


def test_a_second_pending_objection_to_the_same_event_conflicts(client, regulator, merchant):
    event = record(client, regulator, merchant, severity="general")
    assert object_to(client, merchant, event["id"]).status_code == 201

    second = object_to(client, merchant, event["id"], reason="Another try")

    assert second.status_code == 409
    assert problem_code(second) == "objection_pending"


def test_an_objection_without_a_reason_is_refused(client, regulator, merchant):
    event = record(client, regulator, merchant, severity="general")

    refused = object_to(client, merchant, event["id"], reason="")

    assert refused.status_code == 422
    assert "reason" in refused.json["errors"]


def test_a_party_may_object_again_once_an_objection_is_decided(client, regulator, merchant):
    event = record(client, regulator, merchant, severity="general")
    first = object_to(client, merchant, event["id"]).json
    assert decide_objection(client, regulator, first["id"], "upheld").status_code == 200

    again = object_to(client, merchant, event["id"], reason="New evidence has come to light")

    assert again.status_code == 201, again.json
    assert again.json["status"] == "pending"


# --- objections: deciding --------------------------------------------------------------------

@pytest.mark.parametrize("role", [Role.OPERATOR, Role.MERCHANT])
def test_only_a_regulator_decides_an_objection(client, regulator, merchant, role):
    event = record(client, regulator, merchant, kind="data_tampering")
    objection = object_to(client, merchant, event["id"]).json

    refused = decide_objection(client, make_member(role), objection["id"], "revoked")

    assert refused.status_code == 403
    assert credit_file(client, merchant, merchant)["score"] == 600
    assert event_in(credit_file(client, merchant, merchant), event["id"])["disputed"] is True


def test_the_affected_party_cannot_decide_its_own_objection(client, regulator, merchant):
    event = record(client, regulator, merchant, kind="data_tampering")
    objection = object_to(client, merchant, event["id"]).json

    refused = decide_objection(client, merchant, objection["id"], "revoked")

    assert refused.status_code == 403
    assert credit_file(client, merchant, merchant)["blacklisted"] is True


def test_an_upheld_objection_leaves_the_finding_standing(client, regulator, merchant):
    event = record(client, regulator, merchant, kind="data_tampering")
    objection = object_to(client, merchant, event["id"]).json

    decided = decide_objection(client, regulator, objection["id"], "upheld")

    assert decided.status_code == 200, decided.json
    assert decided.json["status"] == "upheld"
    assert decided.json["note"] == "Decided: upheld" and decided.json["decided_at"]
    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"], file["blacklisted"]) == (600, "C", True)
    assert event_in(file, event["id"]) == {**event_in(file, event["id"]),
                                           "status": "effective", "disputed": False}
    assert {p["kind"] for p in file["penalties"]} == {"trade_restriction", "listing_ban"}
    assert [row["disputed"] for row in blacklist(client)] == [False]
    assert [e.action.value for e in ledger_entries(merchant)] == ["recorded"]
    assert not may_list(merchant)
    assert audit_actions(objection["id"]) == ["credit.objection_filed",
                                              "credit.objection_decided"]
    assert_ledger_valid(client, regulator, entries=1)


def test_a_revoked_finding_restores_the_score_and_lifts_blacklisting_and_penalties(
        client, regulator, merchant):
    event = record(client, regulator, merchant, kind="data_tampering")
    before = credit_file(client, merchant, merchant)
    assert (before["score"], before["level"], before["blacklisted"]) == (600, "C", True)
    assert not may_list(merchant)
    objection = object_to(client, merchant, event["id"]).json

    decided = decide_objection(client, regulator, objection["id"], "revoked")

    assert decided.status_code == 200, decided.json
    assert decided.json["status"] == "revoked"
    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"]) == (800, "A")
    assert file["blacklisted"] is False and file["blacklisting"] is None
    assert file["penalties"] == []
    assert event_in(file, event["id"]) == {**event_in(file, event["id"]),
                                           "status": "revoked", "disputed": False}
    assert blacklist(client) == [] and blacklist(client, regulator) == []
    assert may_list(merchant)
    entries = ledger_entries(merchant)
    assert [(e.action.value, str(e.refers_to) if e.refers_to else None) for e in entries] == [
        ("recorded", None), ("revoked", event["id"])]
    assert entries[1].points == 0
    assert audit_actions(objection["id"]) == ["credit.objection_filed",
                                              "credit.objection_decided"]
    assert_ledger_valid(client, regulator, entries=2)


def test_revoking_one_finding_keeps_the_others_in_the_score(client, regulator, merchant):
    kept = record(client, regulator, merchant, kind="late_delivery", severity="general")
    revoked = record(client, regulator, merchant, kind="non_delivery", severity="serious")
    assert credit_file(client, merchant, merchant)["score"] == 800 - 30 - 80
    objection = object_to(client, merchant, revoked["id"]).json

    assert decide_objection(client, regulator, objection["id"], "revoked").status_code == 200

    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"]) == (770, "A")
    assert event_in(file, kept["id"])["status"] == "effective"
    assert [p["event_id"] for p in file["penalties"]] == [kept["id"]]


def test_a_corrected_finding_is_replaced_and_the_blacklisting_lifted(client, regulator,
                                                                     merchant):
    event = record(client, regulator, merchant, kind="data_tampering")
    objection = object_to(client, merchant, event["id"]).json

    decided = decide_objection(client, regulator, objection["id"], "corrected", correction={
        "severity": "general", "description": "Formatting errors, not falsification"})

    assert decided.status_code == 200, decided.json
    assert decided.json["status"] == "corrected"
    correction_id = decided.json["correction_id"]
    assert correction_id and correction_id != event["id"]
    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"]) == (770, "A")
    assert file["blacklisted"] is False
    assert event_in(file, event["id"])["status"] == "corrected"
    new = event_in(file, correction_id)
    assert new == {**new, "status": "effective", "kind": "data_tampering",
                   "severity": "general", "points": -30, "corrects": event["id"],
                   "description": "Formatting errors, not falsification", "disputed": False}
    # The corrected finding keeps the date the act was found.
    assert new["occurred_at"] == event_in(file, event["id"])["occurred_at"]
    # The severe finding's bans are lifted; the general finding brings its own warning.
    assert [(p["kind"], p["event_id"]) for p in file["penalties"]] == [
        ("warning", correction_id)]
    assert blacklist(client) == []
    assert may_list(merchant)
    entries = ledger_entries(merchant)
    assert [(e.action.value, str(e.refers_to) if e.refers_to else None) for e in entries] == [
        ("recorded", None), ("corrected", event["id"])]
    assert audit_actions(objection["id"]) == ["credit.objection_filed",
                                              "credit.objection_decided"]
    assert_ledger_valid(client, regulator, entries=2)


def test_a_correction_may_change_the_kind_as_well_as_the_severity(client, regulator,
                                                                  merchant):
    event = record(client, regulator, merchant, kind="non_delivery", severity="serious")
    objection = object_to(client, merchant, event["id"]).json

    decided = decide_objection(client, regulator, objection["id"], "corrected", correction={
        "kind": "late_delivery", "severity": "minor"})

    assert decided.status_code == 200, decided.json
    file = credit_file(client, merchant, merchant)
    new = event_in(file, decided.json["correction_id"])
    assert (new["kind"], new["severity"], new["points"]) == ("late_delivery", "minor", -10)
    assert (file["score"], file["level"]) == (790, "A")
    assert file["penalties"] == []  # a minor finding brings no warning


def test_a_correction_that_stays_severe_keeps_the_party_blacklisted(client, regulator,
                                                                    merchant):
    event = record(client, regulator, merchant, kind="data_tampering")
    objection = object_to(client, merchant, event["id"]).json

    decided = decide_objection(client, regulator, objection["id"], "corrected", correction={
        "kind": "unfair_competition", "severity": "severe"})

    assert decided.status_code == 200, decided.json
    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["blacklisted"]) == (600, True)
    [row] = blacklist(client, regulator)
    assert row["event_id"] == decided.json["correction_id"]
    assert not may_list(merchant)
    assert_ledger_valid(client, regulator, entries=2)


def test_a_correction_to_a_positive_severity_is_refused(client, regulator, merchant):
    event = record(client, regulator, merchant, kind="data_tampering")
    objection = object_to(client, merchant, event["id"]).json

    refused = decide_objection(client, regulator, objection["id"], "corrected",
                               correction={"severity": "positive"})

    assert refused.status_code == 422
    assert "severity" in refused.json["errors"]
    assert credit_file(client, merchant, merchant)["blacklisted"] is True
    assert_ledger_valid(client, regulator, entries=1)


@pytest.mark.parametrize("correction", [
    {"kind": "clean_year", "severity": "positive"},
    {"kind": "on_time_trade"},
    {"kind": "certification_obtained", "severity": "general"},
])
def test_a_correction_to_a_positive_kind_is_refused(client, regulator, merchant, correction):
    event = record(client, regulator, merchant, kind="data_tampering")
    objection = object_to(client, merchant, event["id"]).json

    refused = decide_objection(client, regulator, objection["id"], "corrected",
                               correction=correction)

    assert refused.status_code == 422, refused.json
    assert problem_code(refused) == "validation_error"
    assert "kind" in refused.json["errors"]
    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["blacklisted"]) == (600, True)
    assert event_in(file, event["id"]) == {**event_in(file, event["id"]),
                                           "status": "effective", "disputed": True}
    assert_ledger_valid(client, regulator, entries=1)


@pytest.mark.parametrize("first", ["upheld", "revoked", "corrected"])
def test_deciding_an_objection_twice_conflicts(client, regulator, merchant, first):
    event = record(client, regulator, merchant, kind="data_tampering")
    objection = object_to(client, merchant, event["id"]).json
    assert decide_objection(client, regulator, objection["id"], first,
                            correction={"severity": "general"}).status_code == 200
    entries = len(ledger_entries(merchant))

    again = decide_objection(client, regulator, objection["id"], "revoked")

    assert again.status_code == 409
    assert problem_code(again) == "invalid_transition"
    assert len(ledger_entries(merchant)) == entries
    assert audit_actions(objection["id"]).count("credit.objection_decided") == 1


def test_deciding_an_unknown_objection_is_not_found(client, regulator):
    refused = decide_objection(client, regulator, str(uuid.uuid4()), "upheld")

    assert refused.status_code == 404


def test_an_objection_decision_outside_the_three_outcomes_is_refused(client, regulator,
                                                                     merchant):
    event = record(client, regulator, merchant, severity="general")
    objection = object_to(client, merchant, event["id"]).json

    refused = decide_objection(client, regulator, objection["id"], "approved")

    assert refused.status_code == 422
    assert "decision" in refused.json["errors"]


def test_a_revoked_finding_cannot_be_objected_to_again(client, regulator, merchant):
    event = record(client, regulator, merchant, severity="general")
    objection = object_to(client, merchant, event["id"]).json
    assert decide_objection(client, regulator, objection["id"], "revoked").status_code == 200

    refused = object_to(client, merchant, event["id"])

    assert refused.status_code == 409


# --- repair: applying ------------------------------------------------------------------------

def test_repair_is_refused_before_the_minimum_publicity_period(client, regulator, merchant):
    event = record(client, regulator, merchant, kind="lost_dispute")

    refused = apply_for_repair(client, merchant, [event["id"]])

    assert refused.status_code == 422
    assert problem_code(refused) == "repair_not_eligible"
    assert "minimum publicity" in refused.json["detail"]
    assert refused.json["event_id"] == event["id"]
    assert credit_file(client, merchant, merchant)["repairs"] == []


def test_repair_becomes_possible_once_the_minimum_publicity_period_is_over(client, regulator,
                                                                          merchant):
    event = record(client, regulator, merchant, kind="lost_dispute")
    listed = credit_file(client, regulator, merchant)["blacklisting"]
    assert (datetime.fromisoformat(listed["publicity_min_until"])
            - datetime.fromisoformat(listed["listed_at"])) == timedelta(days=91)
    clock.advance(timedelta(days=90))
    assert apply_for_repair(client, merchant, [event["id"]]).status_code == 422

    move_past_minimum_publicity(client, regulator, merchant)
    applied = apply_for_repair(client, merchant, [event["id"]])

    assert applied.status_code == 201, applied.json
    assert applied.json == {**applied.json, "status": "pending", "party_id": merchant.id,
                            "event_ids": [event["id"]], "commitment": True,
                            "evidence_ref": "evidence/repair-1.pdf"}
    assert [r["id"] for r in credit_file(client, merchant, merchant)["repairs"]] == [
        applied.json["id"]]
    assert audit_actions(applied.json["id"]) == ["credit.repair_applied"]


def test_a_serious_category_finding_is_publicised_for_a_year_before_repair(client, regulator,
                                                                          merchant):
    event = record(client, regulator, merchant, kind="data_tampering")
    clock.advance(timedelta(days=200))

    refused = apply_for_repair(client, merchant, [event["id"]])

    assert refused.status_code == 422
    assert problem_code(refused) == "repair_not_eligible"
    clock.advance(timedelta(days=166))
    assert apply_for_repair(client, merchant, [event["id"]]).status_code == 201


def test_a_finding_that_is_not_blacklisted_still_waits_its_minimum_publicity_before_repair(
        client, regulator, merchant):
    event = record(client, regulator, merchant, kind="late_delivery", severity="general")
    assert credit_file(client, merchant, merchant)["blacklisted"] is False
    until = datetime.fromisoformat(event["occurred_at"]) + timedelta(days=91)

    refused = apply_for_repair(client, merchant, [event["id"]])

    assert refused.status_code == 422
    assert problem_code(refused) == "repair_not_eligible"
    assert refused.json["detail"] == (
        f"The minimum publicity period is not over until {until.isoformat()}.")
    assert refused.json["eligible_from"] == until.isoformat()
    clock.advance(until - clock.now() - timedelta(minutes=1))
    assert apply_for_repair(client, merchant, [event["id"]]).status_code == 422
    clock.advance(timedelta(minutes=2))
    assert apply_for_repair(client, merchant, [event["id"]]).status_code == 201


def test_a_serious_category_finding_waits_a_year_before_repair_even_unlisted(
        client, regulator, merchant):
    event = record(client, regulator, merchant, kind="resale_beyond_scope", severity="serious")
    assert credit_file(client, merchant, merchant)["blacklisted"] is False
    clock.advance(timedelta(days=200))

    refused = apply_for_repair(client, merchant, [event["id"]])

    assert refused.status_code == 422
    assert "minimum publicity" in refused.json["detail"]
    clock.advance(timedelta(days=166))
    assert apply_for_repair(client, merchant, [event["id"]]).status_code == 201


def test_a_corrected_finding_waits_its_minimum_from_when_the_act_was_found(
        client, regulator, merchant):
    event = record(client, regulator, merchant, kind="non_delivery", severity="serious")
    clock.advance(timedelta(days=60))
    objection = object_to(client, merchant, event["id"]).json
    corrected = decide_objection(client, regulator, objection["id"], "corrected",
                                 correction={"severity": "minor"}).json["correction_id"]
    clock.advance(timedelta(days=30))
    assert apply_for_repair(client, merchant, [corrected]).status_code == 422

    clock.advance(timedelta(days=2))  # 92 days after the finding, 32 after the correction

    assert apply_for_repair(client, merchant, [corrected]).status_code == 201


def test_a_fine_imposed_after_the_application_blocks_its_approval(client, regulator,
                                                                 merchant):
    event = record(client, regulator, merchant, kind="late_delivery", severity="general")
    other = record(client, regulator, merchant, kind="payment_default", severity="minor")
    past_the_minimum_publicity()
    repair = apply_for_repair(client, merchant, [event["id"]]).json
    impose_fine(client, regulator, merchant, other["id"])

    refused = decide_repair(client, regulator, repair["id"], "approved")

    assert refused.status_code == 422
    assert problem_code(refused) == "repair_not_eligible"
    assert "unpaid" in refused.json["detail"]
    file = credit_file(client, merchant, merchant)
    assert event_in(file, event["id"])["status"] == "effective"
    assert file["repairs"][0]["status"] == "pending"


def test_repair_is_refused_while_a_fine_for_the_finding_is_unpaid(client, regulator,
                                                                 merchant):
    event = record(client, regulator, merchant, kind="late_delivery", severity="general")
    fine = impose_fine(client, regulator, merchant, event["id"])
    past_the_minimum_publicity()

    refused = apply_for_repair(client, merchant, [event["id"]])

    assert refused.status_code == 422
    assert problem_code(refused) == "repair_not_eligible"
    assert "unpaid" in refused.json["detail"]
    paid = client.post(f"{CREDIT}/penalties/{fine['id']}/payment", headers=regulator.headers)
    assert paid.status_code == 200 and paid.json["paid"] is True
    assert apply_for_repair(client, merchant, [event["id"]]).status_code == 201


def test_an_unpaid_fine_for_another_finding_also_blocks_repair(client, regulator, merchant):
    event = record(client, regulator, merchant, kind="late_delivery", severity="general")
    other = record(client, regulator, merchant, kind="payment_default", severity="general")
    fine = impose_fine(client, regulator, merchant, other["id"])
    past_the_minimum_publicity()

    for event_id in (event["id"], other["id"]):
        refused = apply_for_repair(client, merchant, [event_id])
        assert refused.status_code == 422, refused.json
        assert problem_code(refused) == "repair_not_eligible"
        assert "unpaid" in refused.json["detail"]
        assert refused.json["penalty_id"] == fine["id"]
    client.post(f"{CREDIT}/penalties/{fine['id']}/payment", headers=regulator.headers)
    assert apply_for_repair(client, merchant, [event["id"]]).status_code == 201


def test_an_unpaid_fine_still_blocks_repair_after_the_publicity_minimum(client, regulator,
                                                                       merchant):
    event = record(client, regulator, merchant, kind="lost_dispute")
    fine = impose_fine(client, regulator, merchant, event["id"])
    move_past_minimum_publicity(client, regulator, merchant)

    refused = apply_for_repair(client, merchant, [event["id"]])

    assert refused.status_code == 422 and "unpaid" in refused.json["detail"]
    client.post(f"{CREDIT}/penalties/{fine['id']}/payment", headers=regulator.headers)
    assert apply_for_repair(client, merchant, [event["id"]]).status_code == 201


def test_fraud_can_never_be_repaired(client, regulator, merchant):
    event = record(client, regulator, merchant, kind="fraud")
    clock.advance(timedelta(days=2 * 365))

    refused = apply_for_repair(client, merchant, [event["id"]])

    assert refused.status_code == 422
    assert problem_code(refused) == "repair_not_eligible"
    assert "fraud" in refused.json["detail"]
    assert credit_file(client, merchant, merchant)["repairs"] == []


def test_one_ineligible_finding_refuses_the_whole_application(client, regulator, merchant):
    repairable = record(client, regulator, merchant, kind="late_delivery", severity="general")
    fraud = record(client, regulator, merchant, kind="fraud")
    past_the_minimum_publicity()

    refused = apply_for_repair(client, merchant, [repairable["id"], fraud["id"]])

    assert refused.status_code == 422
    assert refused.json["event_id"] == fraud["id"]
    assert credit_file(client, merchant, merchant)["repairs"] == []


def test_repair_without_a_signed_commitment_is_refused(client, regulator, merchant):
    event = record(client, regulator, merchant, kind="late_delivery", severity="general")

    refused = apply_for_repair(client, merchant, [event["id"]], commitment=False)

    assert refused.status_code == 422
    assert "commitment" in refused.json["errors"]
    assert credit_file(client, merchant, merchant)["repairs"] == []


def test_repair_without_measures_or_events_is_refused(client, regulator, merchant):
    event = record(client, regulator, merchant, kind="late_delivery", severity="general")

    no_measures = apply_for_repair(client, merchant, [event["id"]], measures="")
    no_events = apply_for_repair(client, merchant, [])

    assert no_measures.status_code == 422 and "measures" in no_measures.json["errors"]
    assert no_events.status_code == 422 and "event_ids" in no_events.json["errors"]


def test_a_party_cannot_apply_to_repair_another_partys_finding(client, regulator, merchant):
    event = record(client, regulator, merchant, kind="late_delivery", severity="general")
    other = make_member(Role.MERCHANT)

    refused = apply_for_repair(client, other, [event["id"]])

    assert refused.status_code == 404
    assert problem_code(refused) == "credit_event_not_found"
    assert credit_file(client, merchant, merchant)["repairs"] == []


def test_an_anonymous_repair_application_is_unauthorized(client, regulator, merchant):
    event = record(client, regulator, merchant, kind="late_delivery", severity="general")

    refused = client.post(f"{CREDIT}/repairs", json={
        "event_ids": [event["id"]], "measures": "x", "commitment": True})

    assert refused.status_code == 401


def test_a_second_pending_repair_of_the_same_finding_conflicts(client, regulator, merchant):
    event = record(client, regulator, merchant, kind="late_delivery", severity="general")
    other = record(client, regulator, merchant, kind="payment_default", severity="general")
    past_the_minimum_publicity()
    assert apply_for_repair(client, merchant, [event["id"]]).status_code == 201

    second = apply_for_repair(client, merchant, [other["id"], event["id"]])

    assert second.status_code == 409
    assert problem_code(second) == "repair_pending"
    assert len(credit_file(client, merchant, merchant)["repairs"]) == 1
    assert apply_for_repair(client, merchant, [other["id"]]).status_code == 201


# --- repair: deciding ------------------------------------------------------------------------

def _eligible_repair(client: FlaskClient, regulator: Member, merchant: Member,
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A severe lost-dispute finding (blacklisted, banned) and a pending repair of it."""
    event = record(client, regulator, merchant, kind="lost_dispute")
    move_past_minimum_publicity(client, regulator, merchant)
    applied = apply_for_repair(client, merchant, [event["id"]])
    assert applied.status_code == 201, applied.json
    return event, applied.json


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.MERCHANT])
def test_only_a_regulator_decides_a_repair(client, regulator, merchant, role):
    _, repair = _eligible_repair(client, regulator, merchant)

    refused = decide_repair(client, make_member(role), repair["id"], "approved")

    assert refused.status_code == 403
    file = credit_file(client, merchant, merchant)
    assert file["blacklisted"] is True and file["repairs"][0]["status"] == "pending"


def test_the_applicant_cannot_approve_its_own_repair(client, regulator, merchant):
    _, repair = _eligible_repair(client, regulator, merchant)

    refused = decide_repair(client, merchant, repair["id"], "approved")

    assert refused.status_code == 403
    assert credit_file(client, merchant, merchant)["blacklisted"] is True


def test_an_approved_repair_ends_publicity_lifts_penalties_and_restores_the_score(
        client, regulator, merchant):
    event, repair = _eligible_repair(client, regulator, merchant)
    before = credit_file(client, merchant, merchant)
    assert (before["score"], before["level"], before["blacklisted"]) == (600, "C", True)
    assert not may_list(merchant)

    decided = decide_repair(client, regulator, repair["id"], "approved")

    assert decided.status_code == 200, decided.json
    assert decided.json["status"] == "approved" and decided.json["decided_at"]
    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"]) == (800, "A")
    assert file["blacklisted"] is False and file["penalties"] == []
    assert blacklist(client) == [] and blacklist(client, regulator) == []
    assert may_list(merchant)
    # The history keeps the finding, marked repaired.
    kept = event_in(file, event["id"])
    assert kept == {**kept, "status": "repaired", "kind": "lost_dispute", "points": -200}
    assert [r["status"] for r in file["repairs"]] == ["approved"]
    entries = ledger_entries(merchant)
    assert [(e.action.value, str(e.refers_to) if e.refers_to else None) for e in entries] == [
        ("recorded", None), ("repaired", event["id"])]
    assert entries[1].points == 0
    assert audit_actions(repair["id"]) == ["credit.repair_applied", "credit.repair_decided"]
    assert_ledger_valid(client, regulator, entries=2)


def test_an_approved_repair_restores_only_the_repaired_findings_points(client, regulator,
                                                                       merchant):
    kept = record(client, regulator, merchant, kind="late_delivery", severity="serious")
    repaired = record(client, regulator, merchant, kind="payment_default", severity="general")
    past_the_minimum_publicity()
    applied = apply_for_repair(client, merchant, [repaired["id"]]).json

    assert decide_repair(client, regulator, applied["id"], "approved").status_code == 200

    file = credit_file(client, merchant, merchant)
    assert file["score"] == 800 - 80
    assert event_in(file, kept["id"])["status"] == "effective"
    assert event_in(file, repaired["id"])["status"] == "repaired"
    assert [p["event_id"] for p in file["penalties"]] == [kept["id"]]


def test_one_repair_may_cover_several_findings(client, regulator, merchant):
    first = record(client, regulator, merchant, kind="late_delivery", severity="general")
    second = record(client, regulator, merchant, kind="payment_default", severity="serious")
    past_the_minimum_publicity()
    applied = apply_for_repair(client, merchant, [first["id"], second["id"]]).json
    assert sorted(applied["event_ids"]) == sorted([first["id"], second["id"]])

    assert decide_repair(client, regulator, applied["id"], "approved").status_code == 200

    file = credit_file(client, merchant, merchant)
    assert file["score"] == 800 and file["penalties"] == []
    assert {e["status"] for e in file["events"]} == {"repaired"}
    assert_ledger_valid(client, regulator, entries=4)


def test_a_rejected_repair_changes_nothing_and_a_new_application_is_allowed(
        client, regulator, merchant):
    event, repair = _eligible_repair(client, regulator, merchant)
    entries = len(ledger_entries(merchant))

    decided = decide_repair(client, regulator, repair["id"], "rejected")

    assert decided.status_code == 200, decided.json
    assert decided.json["status"] == "rejected"
    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"], file["blacklisted"]) == (600, "C", True)
    assert {p["kind"] for p in file["penalties"]} == {"trade_restriction", "listing_ban"}
    assert event_in(file, event["id"])["status"] == "effective"
    assert [row["party_id"] for row in blacklist(client)] == [merchant.id]
    assert not may_list(merchant)
    assert len(ledger_entries(merchant)) == entries
    again = apply_for_repair(client, merchant, [event["id"]])
    assert again.status_code == 201, again.json
    assert again.json["status"] == "pending"
    assert audit_actions(repair["id"]) == ["credit.repair_applied", "credit.repair_decided"]
    assert_ledger_valid(client, regulator, entries=1)


def test_a_repaired_finding_cannot_be_repaired_again(client, regulator, merchant):
    event, repair = _eligible_repair(client, regulator, merchant)
    assert decide_repair(client, regulator, repair["id"], "approved").status_code == 200

    again = apply_for_repair(client, merchant, [event["id"]])

    assert again.status_code == 409
    assert len(ledger_entries(merchant)) == 2


@pytest.mark.parametrize("first", ["approved", "rejected"])
def test_deciding_a_repair_twice_conflicts(client, regulator, merchant, first):
    _, repair = _eligible_repair(client, regulator, merchant)
    assert decide_repair(client, regulator, repair["id"], first).status_code == 200
    entries = len(ledger_entries(merchant))

    again = decide_repair(client, regulator, repair["id"], "approved")

    assert again.status_code == 409
    assert problem_code(again) == "invalid_transition"
    assert len(ledger_entries(merchant)) == entries
    assert credit_file(client, merchant, merchant)["repairs"][0]["status"] == first


def test_deciding_an_unknown_repair_is_not_found(client, regulator):
    refused = decide_repair(client, regulator, str(uuid.uuid4()), "approved")

    assert refused.status_code == 404


def test_a_repair_decision_outside_approved_or_rejected_is_refused(client, regulator,
                                                                   merchant):
    _, repair = _eligible_repair(client, regulator, merchant)

    refused = decide_repair(client, regulator, repair["id"], "revoked")

    assert refused.status_code == 422
    assert "decision" in refused.json["errors"]


# --- the whole story -------------------------------------------------------------------------

def test_objections_and_repairs_keep_the_ledger_valid_and_the_audit_complete(client, regulator,
                                                                            merchant):
    revoked = record(client, regulator, merchant, kind="data_tampering")
    corrected = record(client, regulator, merchant, kind="non_delivery", severity="serious")
    repaired = record(client, regulator, merchant, kind="late_delivery", severity="general")
    first = object_to(client, merchant, revoked["id"]).json
    second = object_to(client, merchant, corrected["id"]).json
    assert decide_objection(client, regulator, first["id"], "revoked").status_code == 200
    assert decide_objection(client, regulator, second["id"], "corrected",
                            correction={"severity": "minor"}).status_code == 200
    past_the_minimum_publicity()
    repair = apply_for_repair(client, merchant, [repaired["id"]]).json
    assert decide_repair(client, regulator, repair["id"], "approved").status_code == 200

    assert_ledger_valid(client, regulator, entries=6)
    audit_report = client.get("/api/v1/audit/verify", headers=regulator.headers).json
    assert audit_report["valid"] is True
    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"], file["blacklisted"]) == (790, "A", False)
    db.session.expire_all()
    actions = list(db.session.scalars(sa.select(AuditEntry.action)
                                      .where(AuditEntry.action.like("credit.%"))))
    assert {"credit.objection_filed", "credit.objection_decided", "credit.repair_applied",
            "credit.repair_decided"} <= set(actions)
    assert actions.count("credit.objection_decided") == 2
    recomputed = recompute.recompute_all(db.session)
    db.session.rollback()
    assert recomputed == []


# --- concurrency (PostgreSQL) ----------------------------------------------------------------

@pytest.mark.postgres_only
def test_concurrent_repair_applications_for_one_finding_create_exactly_one(app, client,
                                                                          regulator, merchant):
    event = record(client, regulator, merchant, kind="late_delivery", severity="general")
    past_the_minimum_publicity()

    responses = race(app, 8, lambda c, _: apply_for_repair(c, merchant, [event["id"]]))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 7, [r.get_data(as_text=True) for r in responses]
    assert {problem_code(r) for r in responses if r.status_code == 409} == {"repair_pending"}
    assert len(credit_file(client, merchant, merchant)["repairs"]) == 1


@pytest.mark.postgres_only
def test_concurrent_objections_to_one_finding_leave_exactly_one_pending(app, client,
                                                                        regulator, merchant):
    event = record(client, regulator, merchant, kind="late_delivery", severity="general")

    responses = race(app, 8, lambda c, _: object_to(c, merchant, event["id"]))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 7, [r.get_data(as_text=True) for r in responses]
    assert {problem_code(r) for r in responses if r.status_code == 409} == {"objection_pending"}


@pytest.mark.postgres_only
def test_concurrent_decisions_on_one_objection_append_one_entry(app, client, regulator,
                                                                merchant):
    event = record(client, regulator, merchant, kind="data_tampering")
    objection = object_to(client, merchant, event["id"]).json

    responses = race(app, 6, lambda c, _: decide_objection(c, regulator, objection["id"],
                                                            "revoked"))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [409] * 5, [r.get_data(as_text=True) for r in responses]
    assert [e.action.value for e in ledger_entries(merchant)] == ["recorded", "revoked"]
    assert_ledger_valid(client, regulator, entries=2)


@pytest.mark.postgres_only
def test_concurrent_decisions_on_one_repair_append_one_entry(app, client, regulator,
                                                             merchant):
    _, repair = _eligible_repair(client, regulator, merchant)

    responses = race(app, 6, lambda c, _: decide_repair(c, regulator, repair["id"], "approved"))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [409] * 5, [r.get_data(as_text=True) for r in responses]
    assert [e.action.value for e in ledger_entries(merchant)] == ["recorded", "repaired"]
    assert_ledger_valid(client, regulator, entries=2)


def test_revoking_a_finding_that_brought_level_d_lifts_the_level_d_blacklisting(
        client, regulator, merchant):
    findings = [record(client, regulator, merchant, kind=kind, severity="serious")
                for kind in ("non_delivery", "unfair_competition", "late_delivery",
                             "payment_default")]
    before = credit_file(client, merchant, merchant)
    assert (before["score"], before["level"], before["blacklisted"]) == (480, "D", True)
    objection = object_to(client, merchant, findings[0]["id"]).json

    assert decide_objection(client, regulator, objection["id"], "revoked").status_code == 200

    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"]) == (560, "C")
    assert file["blacklisted"] is False
    assert blacklist(client) == []


def test_a_level_d_blacklisting_stays_while_the_revised_record_is_still_level_d(
        client, regulator, merchant):
    findings = [record(client, regulator, merchant, kind="non_delivery", severity="serious")
                for _ in range(5)]
    assert credit_file(client, merchant, merchant)["level"] == "D"
    objection = object_to(client, merchant, findings[0]["id"]).json

    assert decide_objection(client, regulator, objection["id"], "revoked").status_code == 200

    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"], file["blacklisted"]) == (480, "D", True)
    assert [row["party_id"] for row in blacklist(client)] == [merchant.id]


def test_correcting_a_finding_out_of_level_d_lifts_the_level_d_blacklisting(
        client, regulator, merchant):
    findings = [record(client, regulator, merchant, kind="non_delivery", severity="serious")
                for _ in range(4)]
    assert credit_file(client, merchant, merchant)["blacklisted"] is True
    objection = object_to(client, merchant, findings[1]["id"]).json

    decided = decide_objection(client, regulator, objection["id"], "corrected",
                               correction={"severity": "minor"})

    assert decided.status_code == 200, decided.json
    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"], file["blacklisted"]) == (550, "C", False)
    assert_ledger_valid(client, regulator, entries=5)
