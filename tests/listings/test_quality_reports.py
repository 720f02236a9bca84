"""Quality reports cannot be spammed, and a quality flag is an internal review matter: shown to
the merchant and the overseers only, cleared by an operator with a reason."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.parties.models import Role
from app.scheduler import run_job
from tests.factories import Member, make_member
from tests.listings.factories import listing_body
from tests.orders.factories import give_completed_order

LISTINGS = "/api/v1/listings"


@dataclass
class Cast:
    merchant: Member
    operator: Member
    buyer: Member


@pytest.fixture
def cast(app: Flask) -> Cast:
    return Cast(merchant=make_member(Role.MERCHANT), operator=make_member(Role.OPERATOR),
                buyer=make_member(Role.BUYER))


def _listed(client: FlaskClient, cast: Cast, merchant: Member | None = None) -> str:
    merchant = merchant or cast.merchant
    created = client.post(LISTINGS, json=listing_body(merchant), headers=merchant.headers)
    assert created.status_code == 201, created.json
    listing_id = created.json["id"]
    client.post(f"{LISTINGS}/{listing_id}/submit", headers=merchant.headers)
    approved = client.post(f"{LISTINGS}/{listing_id}/review", headers=cast.operator.headers,
                           json={"decision": "approve", "reason": "Checked"})
    assert approved.json["status"] == "listed", approved.json
    return listing_id


def _report(client: FlaskClient, buyer: Member, listing_id: str, score: int = 1) -> Any:
    give_completed_order(client, buyer.id, listing_id)
    return client.post(f"{LISTINGS}/{listing_id}/quality-reports", headers=buyer.headers,
                       json={"score": score, "issue": "Missing hours"})


def _detail(client: FlaskClient, viewer: Member, listing_id: str) -> dict[str, Any]:
    response = client.get(f"{LISTINGS}/{listing_id}", headers=viewer.headers)
    assert response.status_code == 200, response.json
    return response.json


def _trace(client: FlaskClient, cast: Cast, listing_id: str) -> list[dict[str, Any]]:
    response = client.get(f"{LISTINGS}/{listing_id}/trace", headers=cast.operator.headers)
    assert response.status_code == 200, response.json
    return response.json


def _flagged(app: Flask, client: FlaskClient, cast: Cast, reports: int = 3) -> str:
    """A listed product rated 1 by `reports` buyers and flagged by the evaluation job."""
    listing_id = _listed(client, cast)
    for _ in range(reports):
        assert _report(client, make_member(Role.BUYER), listing_id).status_code == 201
    assert run_job(app, "evaluate_listings") is True
    assert _detail(client, cast.operator, listing_id)["review_flag"] is not None
    return listing_id


def _clear(client: FlaskClient, actor: Member, listing_id: str,
           reason: str | None = "Sensor outage explained; data backfilled") -> Any:
    body = {} if reason is None else {"reason": reason}
    return client.post(f"{LISTINGS}/{listing_id}/clear-flag", headers=actor.headers, json=body)


# --- one report per buyer ---------------------------------------------------------------

def test_a_buyer_reports_on_a_listing_once_and_a_second_report_conflicts(client, cast):
    listing_id = _listed(client, cast)
    assert _report(client, cast.buyer, listing_id, 4).status_code == 201

    again = _report(client, cast.buyer, listing_id, 1)

    assert again.status_code == 409, again.json
    assert again.json["code"] == "quality_already_reported"
    assert _detail(client, cast.operator, listing_id)["quality"] == {"count": 1, "average": 4}
    actions = [entry["action"] for entry in _trace(client, cast, listing_id)]
    assert actions.count("listing.quality_reported") == 1
    # The same buyer still reports on another listing.
    assert _report(client, cast.buyer, _listed(client, cast), 2).status_code == 201


def test_a_merchant_cannot_report_on_the_quality_of_its_own_listing(client, cast):
    merchant_buyer = make_member(Role.MERCHANT, Role.BUYER)
    own = _listed(client, cast, merchant_buyer)

    refused = _report(client, merchant_buyer, own, 5)

    assert refused.status_code == 403, refused.json
    assert refused.json["code"] == "own_listing"
    assert _detail(client, cast.operator, own)["quality"]["count"] == 0
    # As a buyer of someone else's product it reports as anyone does.
    assert _report(client, merchant_buyer, _listed(client, cast), 5).status_code == 201


@pytest.mark.postgres_only
def test_concurrent_reports_of_one_buyer_on_one_listing_count_once(app, client, cast):
    listing_id = _listed(client, cast)
    attempts = 8
    start = threading.Barrier(attempts)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def report() -> None:
        try:
            own_client = app.test_client()
            start.wait()
            statuses.append(_report(own_client, cast.buyer, listing_id, 2).status_code)
        except BaseException as error:  # surfaced in the main thread
            errors.append(error)

    threads = [threading.Thread(target=report) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert sorted(statuses) == [201] + [409] * (attempts - 1)
    assert _detail(client, cast.operator, listing_id)["quality"] == {"count": 1, "average": 2}


# --- who sees a flag ----------------------------------------------------------------------

def test_a_review_flag_is_shown_only_to_the_merchant_operators_and_regulators(app, client, cast):
    listing_id = _flagged(app, client, cast)
    flag = _detail(client, cast.operator, listing_id)["review_flag"]
    assert "Poor quality" in flag

    for insider in (cast.merchant, cast.operator, make_member(Role.REGULATOR)):
        assert _detail(client, insider, listing_id)["review_flag"] == flag
        [found] = client.get(f"{LISTINGS}?flagged=true", headers=insider.headers).json
        assert (found["id"], found["review_flag"]) == (listing_id, flag)
    for outsider in (cast.buyer, make_member(Role.MERCHANT), make_member(Role.CERTIFIER)):
        assert _detail(client, outsider, listing_id)["review_flag"] is None
        [shown] = client.get(LISTINGS, headers=outsider.headers).json
        assert (shown["id"], shown["review_flag"]) == (listing_id, None)
        # Nor can the flag be found out by filtering on it.
        for flagged in ("true", "false"):
            assert client.get(f"{LISTINGS}?flagged={flagged}",
                              headers=outsider.headers).json == []


# --- clearing a flag ----------------------------------------------------------------------

def test_an_operator_clears_a_flag_with_a_reason_and_the_trace_records_it(app, client, cast):
    listing_id = _flagged(app, client, cast)
    flag = _detail(client, cast.operator, listing_id)["review_flag"]

    cleared = _clear(client, cast.operator, listing_id)

    assert cleared.status_code == 200, cleared.json
    assert cleared.json["review_flag"] is None
    assert cleared.json["status"] == "listed"
    assert cleared.headers["ETag"] == f'"{cleared.json["version"]}"'
    assert client.get(f"{LISTINGS}?flagged=true", headers=cast.operator.headers).json == []
    last = _trace(client, cast, listing_id)[-1]
    assert (last["action"], last["actor_id"]) == ("listing.flag_cleared", cast.operator.id)
    assert last["details"] == {"status": "listed", "flag": flag,
                               "reason": "Sensor outage explained; data backfilled"}


def test_a_cleared_flag_is_raised_again_only_by_poor_reports_made_after_it(app, client, cast):
    listing_id = _flagged(app, client, cast)
    assert _clear(client, cast.operator, listing_id).status_code == 200

    assert run_job(app, "evaluate_listings") is True
    assert _detail(client, cast.operator, listing_id)["review_flag"] is None

    assert _report(client, make_member(Role.BUYER), listing_id, 1).status_code == 201
    assert run_job(app, "evaluate_listings") is True
    flag = _detail(client, cast.operator, listing_id)["review_flag"]
    assert flag is not None and "over 4 buyer reports" in flag
    actions = [entry["action"] for entry in _trace(client, cast, listing_id)]
    assert actions[-3:] == ["listing.flag_cleared", "listing.quality_reported",
                            "listing.flagged"]


def test_clearing_a_listing_that_is_not_flagged_conflicts(client, cast):
    listing_id = _listed(client, cast)
    before = _detail(client, cast.operator, listing_id)

    refused = _clear(client, cast.operator, listing_id)

    assert refused.status_code == 409, refused.json
    assert refused.json["code"] == "not_flagged"
    assert _detail(client, cast.operator, listing_id)["version"] == before["version"]
    assert "listing.flag_cleared" not in [e["action"] for e in _trace(client, cast, listing_id)]


@pytest.mark.parametrize("role", ["owner", Role.REGULATOR, Role.BUYER, Role.CERTIFIER])
def test_only_an_operator_may_clear_a_flag(app, client, cast, role):
    listing_id = _flagged(app, client, cast)
    actor = cast.merchant if role == "owner" else make_member(role)

    refused = _clear(client, actor, listing_id)

    assert refused.status_code == 403, refused.json
    assert _detail(client, cast.operator, listing_id)["review_flag"] is not None


@pytest.mark.parametrize("reason", [None, ""])
def test_clearing_a_flag_needs_a_reason(app, client, cast, reason):
    listing_id = _flagged(app, client, cast)

    refused = _clear(client, cast.operator, listing_id, reason)

    assert refused.status_code == 422, refused.json
    assert "reason" in refused.json["errors"]
    assert _detail(client, cast.operator, listing_id)["review_flag"] is not None


def test_clearing_the_flag_of_an_unknown_listing_is_not_found(client, cast):
    refused = _clear(client, cast.operator, "00000000-0000-4000-8000-000000000000")
    assert refused.status_code == 404
    assert refused.json["code"] == "listing_not_found"
