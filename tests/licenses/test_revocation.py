"""Operators and regulators suspend, reinstate and revoke licences; a revocation names the party
at fault, which gets a credit finding."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app import clock
from app.audit import AuditEntry
from app.extensions import db
from app.parties.models import Role
from app.scheduler import run_job
from tests.factories import make_member
from tests.licenses.helpers import API, Licensing
from tests.orders.factories import Market
from tests.support import ok, problem

REASON = {"reason": "调查中 Under investigation"}
THIRTY_DAYS = {"usage_scope": {"purposes": ["research"], "term_days": 30,
                               "territory": "domestic", "resale": False, "derivatives": True}}


@pytest.fixture
def trade(market: Market) -> Licensing:
    return Licensing(market)


def findings(trade: Licensing, party) -> list[dict]:
    return ok(trade.client.get(f"{API}/credit/parties/{party.id}",
                               headers=trade.market.regulator.headers))["events"]


def licence_actions(license_id: str) -> list[tuple[str, dict]]:
    with db.engine.connect() as connection:
        return [(action, details) for action, details in connection.execute(
            sa.select(AuditEntry.action, AuditEntry.details).where(
                AuditEntry.subject_type == "licenses", AuditEntry.subject_id == license_id)
            .order_by(AuditEntry.id))]


def test_an_operator_suspends_and_a_regulator_reinstates_an_active_licence(trade):
    m = trade.market
    _, licence = trade.delivered()
    suspended = ok(trade.post(licence["id"], "suspend", m.operator, REASON))
    assert (suspended["status"], suspended["status_reason"]) == ("suspended", REASON["reason"])
    assert trade.license(licence["id"], m.buyer)["status"] == "suspended"
    problem(trade.post(licence["id"], "suspend", m.regulator, REASON), 409,
            "invalid_transition")
    reinstated = ok(trade.post(licence["id"], "reinstate", m.regulator,
                               {"reason": "Cleared by the investigation"}))
    assert (reinstated["status"], reinstated["valid_until"]) == ("active",
                                                                 licence["valid_until"])
    problem(trade.post(licence["id"], "reinstate", m.operator, REASON), 409,
            "invalid_transition")
    assert [(action, details.get("reason")) for action, details in
            licence_actions(licence["id"])][-2:] == [
        ("license.suspended", REASON["reason"]),
        ("license.reinstated", "Cleared by the investigation")]


def test_a_pending_licence_is_not_suspended(trade):
    order = trade.order(trade.listing())
    problem(trade.post(order["license_id"], "suspend", trade.market.operator, REASON), 409,
            "invalid_transition")


def test_only_operators_and_regulators_decide_on_licences(trade):
    m = trade.market
    _, licence = trade.delivered()
    for member in (m.buyer, m.merchant, make_member(Role.CERTIFIER)):
        for action, body in (("suspend", REASON), ("reinstate", REASON),
                             ("revoke", {**REASON, "fault_party": "none"})):
            problem(trade.post(licence["id"], action, member, body), 403)
    problem(trade.post(m.buyer.id, "suspend", m.operator, REASON), 404, "license_not_found")
    assert trade.license(licence["id"])["status"] == "active"


def test_revoking_for_the_buyers_resale_records_its_finding_against_the_buyer(trade):
    m = trade.market
    _, licence = trade.delivered()
    before = len(findings(trade, m.merchant))
    revoked = ok(trade.post(licence["id"], "revoke", m.regulator, {
        "reason": "The buyer resold the data", "fault_party": "buyer",
        "kind": "resale_beyond_scope"}))
    assert (revoked["status"], revoked["status_reason"]) == ("revoked",
                                                             "The buyer resold the data")
    [finding] = [event for event in findings(trade, m.buyer)
                 if event["kind"] == "resale_beyond_scope"]
    assert finding["severity"] == "serious"  # the kind's usual severity
    assert finding["evidence_ref"] == f"license:{licence['id']}"
    assert "The buyer resold the data" in finding["description"]
    assert len(findings(trade, m.merchant)) == before
    action, details = licence_actions(licence["id"])[-1]
    assert (action, details["fault_party"], details["kind"]) == (
        "license.revoked", "buyer", "resale_beyond_scope")
    problem(trade.post(licence["id"], "revoke", m.operator, {**REASON, "fault_party": "none"}),
            409, "invalid_transition")
    # The order stands: a revocation is no refund.
    assert ok(trade.client.get(f"{API}/orders/{licence['order_id']}",
                               headers=m.buyer.headers))["status"] == "delivered"


def test_revoking_for_the_merchants_tampering_records_its_finding_at_the_severity_given(trade):
    m = trade.market
    _, licence = trade.delivered()
    ok(trade.post(licence["id"], "revoke", m.operator, {
        "reason": "The data were falsified", "fault_party": "merchant",
        "kind": "data_tampering", "severity": "serious"}))
    [finding] = [event for event in findings(trade, m.merchant)
                 if event["kind"] == "data_tampering"]
    assert finding["severity"] == "serious"


def test_a_revocation_nobody_is_at_fault_for_records_no_finding(trade):
    m = trade.market
    _, licence = trade.delivered()
    before = {party.id: len(findings(trade, party)) for party in (m.buyer, m.merchant)}
    ok(trade.post(licence["id"], "revoke", m.operator,
                  {"reason": "The rights holder withdrew consent", "fault_party": "none"}))
    assert {party.id: len(findings(trade, party)) for party in (m.buyer, m.merchant)} == before


@pytest.mark.parametrize("body, field", [
    ({"fault_party": "buyer"}, "kind"),
    ({"fault_party": "merchant", "kind": "on_time_trade"}, "kind"),
    ({"fault_party": "buyer", "kind": "no_such_kind"}, "kind"),
    ({"fault_party": "none", "kind": "fraud"}, "kind"),
    ({"fault_party": "buyer", "kind": "fraud", "severity": "positive"}, "severity"),
    ({"fault_party": "someone", "kind": "fraud"}, "fault_party"),
    ({"kind": "fraud"}, "fault_party"),
])
def test_a_revocation_without_a_coherent_finding_is_refused_and_changes_nothing(
        trade, body, field):
    m = trade.market
    _, licence = trade.delivered()
    before = {party.id: len(findings(trade, party)) for party in (m.buyer, m.merchant)}
    refused = problem(trade.post(licence["id"], "revoke", m.operator, {**REASON, **body}), 422)
    assert field in refused["errors"], refused
    assert trade.license(licence["id"])["status"] == "active"
    assert {party.id: len(findings(trade, party)) for party in (m.buyer, m.merchant)} == before


def test_suspended_and_revoked_licences_are_left_to_their_decision_by_the_expiry_job(app, trade):
    m = trade.market
    listing = trade.listing(**THIRTY_DAYS)
    _, suspended = trade.delivered(listing)
    _, revoked = trade.delivered(listing)
    ok(trade.post(suspended["id"], "suspend", m.operator, REASON))
    ok(trade.post(revoked["id"], "revoke", m.operator, {**REASON, "fault_party": "none"}))
    clock.advance(timedelta(days=31))
    assert run_job(app, "expire_licenses")
    assert trade.license(suspended["id"])["status"] == "suspended"
    assert trade.license(revoked["id"])["status"] == "revoked"
    # Reinstated past its end, it is active until the job's next run expires it.
    ok(trade.post(suspended["id"], "reinstate", m.operator, REASON))
    assert run_job(app, "expire_licenses")
    assert trade.license(suspended["id"])["status"] == "expired"
