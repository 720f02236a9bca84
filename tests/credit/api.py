"""HTTP helpers shared by the newer credit test modules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.db import unit_of_work
from credit.models import BlacklistEntry, Penalty
from tests.factories import Member

CREDIT = "/api/v1/credit"


def record(client: FlaskClient, recorder: Member, party: Member, kind: str,
           severity: str) -> dict[str, Any]:
    response = client.post(f"{CREDIT}/events", headers=recorder.headers, json={
        "party_id": party.id, "kind": kind, "severity": severity,
        "description": f"{kind} found by inspection", "evidence_ref": "case-001"})
    assert response.status_code == 201, response.json
    return response.get_json()


def credit_file(client: FlaskClient, viewer: Member, party: Member) -> dict[str, Any]:
    response = client.get(f"{CREDIT}/parties/{party.id}", headers=viewer.headers)
    assert response.status_code == 200, response.json
    return response.get_json()


def blacklist(client: FlaskClient, viewer: Member | None = None,
              **query: Any) -> list[dict[str, Any]]:
    response = client.get(f"{CREDIT}/blacklist", query_string=query,
                          headers=viewer.headers if viewer else {})
    assert response.status_code == 200, response.json
    return response.get_json()


def object_and_decide(client: FlaskClient, party: Member, regulator: Member, event_id: str,
                      decision: str, **extra: Any) -> TestResponse:
    objection = client.post(f"{CREDIT}/events/{event_id}/objections", headers=party.headers,
                            json={"reason": "Not what happened", "evidence_ref": None})
    assert objection.status_code == 201, objection.json
    return client.post(f"{CREDIT}/objections/{objection.get_json()['id']}/decide",
                       headers=regulator.headers,
                       json={"decision": decision, "note": f"Decided: {decision}", **extra})


def apply_for_repair(client: FlaskClient, party: Member, event_ids: list[str]) -> TestResponse:
    return client.post(f"{CREDIT}/repairs", headers=party.headers, json={
        "event_ids": event_ids, "measures": "Refunded the buyer and retrained staff.",
        "commitment": True, "evidence_ref": "evidence/repair-1.pdf"})


def impose(client: FlaskClient, by: Member, party: Member, kind: str, **extra: Any,
           ) -> TestResponse:
    return client.post(f"{CREDIT}/penalties", headers=by.headers,
                       json={"party_id": party.id, "kind": kind, "days": 30, **extra})


def listings_of(party: Member) -> list[BlacklistEntry]:
    """The party's blacklistings, ended or not, oldest first."""
    with unit_of_work() as session:
        return list(session.scalars(sa.select(BlacklistEntry).where(
            BlacklistEntry.party_id == party.party.id).order_by(BlacklistEntry.listed_at)))


def penalties_of(party: Member, event_id: str | None = None) -> list[Penalty]:
    """The party's penalties, lifted or not (of one finding when `event_id` is given)."""
    with unit_of_work() as session:
        stmt = sa.select(Penalty).where(Penalty.party_id == party.party.id)
        if event_id is not None:
            stmt = stmt.where(Penalty.event_id == uuid.UUID(event_id))
        return list(session.scalars(stmt.order_by(Penalty.created_at)))


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)
