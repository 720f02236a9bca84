"""The operation evaluation works listing by listing: one listing failing or being changed
concurrently is left for the next run, and the others keep what was done to them."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm.exc import StaleDataError

from app import clock
from app.extensions import db
from app.parties.models import SYSTEM, Role
from app.scheduler import run_job
from listings.jobs import evaluate_listings
from listings.models import Listing
from tests.factories import Member, make_member
from tests.listings.factories import listing_body

LISTINGS = "/api/v1/listings"


@dataclass
class Cast:
    merchant: Member
    operator: Member
    certifier: Member


@pytest.fixture
def cast(app: Flask) -> Cast:
    return Cast(merchant=make_member(Role.MERCHANT), operator=make_member(Role.OPERATOR),
                certifier=make_member(Role.CERTIFIER))


def _listed_sensitive(client: FlaskClient, cast: Cast, valid_days: int) -> str:
    created = client.post(LISTINGS, json=listing_body(cast.merchant, classification="sensitive"),
                          headers=cast.merchant.headers)
    listing_id = created.json["id"]
    client.post(f"{LISTINGS}/{listing_id}/submit", headers=cast.merchant.headers)
    certified = client.post(f"{LISTINGS}/{listing_id}/certifications",
                            headers=cast.certifier.headers, json={
                                "rating": "A", "scopes": ["compliance"], "report_ref": "C-1",
                                "valid_until": (clock.now() + timedelta(days=valid_days))
                                .isoformat()})
    assert certified.status_code == 201, certified.json
    approved = client.post(f"{LISTINGS}/{listing_id}/review", headers=cast.operator.headers,
                           json={"decision": "approve", "reason": "Certified"})
    assert approved.json["status"] == "listed", approved.json
    return listing_id


def _status(client: FlaskClient, cast: Cast, listing_id: str) -> str:
    return client.get(f"{LISTINGS}/{listing_id}", headers=cast.operator.headers).json["status"]


def _suspensions(client: FlaskClient, cast: Cast, listing_id: str) -> int:
    trace = client.get(f"{LISTINGS}/{listing_id}/trace", headers=cast.operator.headers).json
    return [entry["action"] for entry in trace].count("listing.suspended")


def _evaluate(app: Flask) -> dict[str, int]:
    """The job's body with its outcome, in an app context (and session) of its own as the
    scheduler runs it."""
    with app.app_context():
        return evaluate_listings(actor=SYSTEM, at=clock.now())


def test_one_listing_failing_does_not_undo_the_evaluation_of_the_others(
        app, client, cast, monkeypatch, caplog):
    lapsed = [_listed_sensitive(client, cast, valid_days=5) for _ in range(3)]
    failing = lapsed[1]
    clock.advance(timedelta(days=6))
    move = Listing.move

    def changed_concurrently(listing: Listing, step: str, **kwargs: Any) -> None:
        if str(listing.id) == failing:
            raise StaleDataError("changed by someone else meanwhile")
        move(listing, step, **kwargs)

    monkeypatch.setattr(Listing, "move", changed_concurrently)
    assert _evaluate(app) == {"suspended": 2, "flagged": 0, "skipped": 0, "failed": 1}
    assert "listing evaluation failed" in caplog.text

    assert [_status(client, cast, i) for i in lapsed] == ["suspended", "listed", "suspended"]
    assert _suspensions(client, cast, failing) == 0

    # The next run takes the listing left behind, and only that one.
    monkeypatch.undo()
    assert run_job(app, "evaluate_listings") is True
    assert [_status(client, cast, i) for i in lapsed] == ["suspended"] * 3
    assert [_suspensions(client, cast, i) for i in lapsed] == [1, 1, 1]


@pytest.mark.postgres_only
def test_a_listing_locked_by_a_concurrent_change_is_skipped_not_waited_for(app, client, cast):
    lapsed = [_listed_sensitive(client, cast, valid_days=5) for _ in range(2)]
    locked = lapsed[0]
    clock.advance(timedelta(days=6))
    outcomes: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def evaluate() -> None:
        try:
            outcomes.append(_evaluate(app))
        except BaseException as error:  # surfaced in the main thread
            errors.append(error)

    with db.engine.connect() as holder:  # an operator's transaction holding the row
        holder.execute(sa.select(Listing.id).where(Listing.id == uuid.UUID(locked))
                       .with_for_update())
        runner = threading.Thread(target=evaluate)
        runner.start()
        runner.join(timeout=30)
        finished_while_locked = not runner.is_alive()
        holder.rollback()
    runner.join(timeout=30)

    assert finished_while_locked
    assert not errors
    assert outcomes == [{"suspended": 1, "flagged": 0, "skipped": 1, "failed": 0}]
    assert [_status(client, cast, i) for i in lapsed] == ["listed", "suspended"]

    assert run_job(app, "evaluate_listings") is True
    assert [_status(client, cast, i) for i in lapsed] == ["suspended", "suspended"]
    assert [_suspensions(client, cast, i) for i in lapsed] == [1, 1]
