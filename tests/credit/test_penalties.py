"""Penalties imposed by hand name a real finding about the punished party; the API answers
with the penalty and the event as the credit file shows them."""

from __future__ import annotations

import uuid

from app.parties.models import Role
from tests.credit.api import credit_file, impose, penalties_of, record
from tests.factories import make_member


def test_a_fine_for_a_finding_about_the_party_is_imposed(client, regulator, merchant):
    finding = record(client, regulator, merchant, "late_delivery", "minor")

    imposed = impose(client, regulator, merchant, "fine", amount=10_000, event_id=finding["id"])

    assert imposed.status_code == 201, imposed.json
    assert imposed.json["event_id"] == finding["id"]
    [listed] = credit_file(client, merchant, merchant)["penalties"]
    assert listed == imposed.json  # answered as the credit file shows it


def test_a_penalty_for_an_unknown_event_is_refused(client, regulator, merchant):
    refused = impose(client, regulator, merchant, "fine", amount=10_000,
                     event_id=str(uuid.uuid4()))

    assert refused.status_code == 422
    assert refused.json["code"] == "validation_error"
    assert "event_id" in refused.json["errors"]
    assert penalties_of(merchant) == []


def test_a_penalty_for_another_partys_finding_is_refused(client, regulator, merchant):
    other = make_member(Role.MERCHANT)
    finding = record(client, regulator, other, "late_delivery", "minor")

    refused = impose(client, regulator, merchant, "fine", amount=10_000,
                     event_id=finding["id"])

    assert refused.status_code == 422
    assert "event_id" in refused.json["errors"]
    assert penalties_of(merchant) == []
    assert penalties_of(other) == []


def test_a_penalty_for_a_positive_event_is_refused(client, regulator, merchant):
    reward = record(client, regulator, merchant, "on_time_trade", "positive")

    refused = impose(client, regulator, merchant, "warning", event_id=reward["id"])

    assert refused.status_code == 422
    assert "event_id" in refused.json["errors"]
    assert penalties_of(merchant) == []


def test_a_recorded_event_is_answered_as_the_credit_file_shows_it(client, regulator,
                                                                 merchant):
    recorded = record(client, regulator, merchant, "unfair_competition", "serious")

    [shown] = credit_file(client, merchant, merchant)["events"]

    assert recorded == {**shown, "party_id": merchant.id}
    assert (recorded["status"], recorded["disputed"]) == ("effective", False)
