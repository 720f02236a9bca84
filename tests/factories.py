"""factory-boy factories and helpers that create parties with working API keys."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import factory
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app import clock
from app.db import unit_of_work
from app.extensions import db
from app.parties import services
from app.parties.credit_code import check_character
from app.parties.models import SYSTEM, Party, PartyKind, Role
from listings import qualifications
from listings.models import CertificationScope, Classification

_serial = itertools.count(1)


def new_credit_code() -> str:
    """A fresh, valid unified social credit code."""
    first17 = f"91310000MA{next(_serial):07d}"
    return first17 + check_character(first17)


class PartyBodyFactory(factory.DictFactory):
    """A registration body for POST /api/v1/parties."""

    name = factory.Sequence(lambda n: f"Party {n} Co.")
    credit_code = factory.LazyFunction(new_credit_code)
    kind = PartyKind.ENTERPRISE.value
    roles = factory.LazyFunction(lambda: [Role.BUYER.value])


@dataclass
class Member:
    """A party and its API key, as a test uses them."""

    party: Party
    key: str

    @property
    def id(self) -> str:
        return str(self.party.id)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


# What make_member grants: a merchant is qualified, and a certifier accredited for every
# scope, up to important data, for longer than any test moves the clock.
GRANTED_UP_TO = Classification.IMPORTANT
GRANTED_FOR = timedelta(days=50 * 365)


def make_member(*roles: Role, kind: PartyKind = PartyKind.ENTERPRISE,
                granted: bool = True) -> Member:
    """Register a party with the given roles (any role: created as the system). Unless
    `granted` is False, a merchant is given a qualification and a certifier an accreditation
    up to important data, as an operator grants them."""
    body = PartyBodyFactory.build()
    with unit_of_work(db.session()) as session:
        party, issued = services.register_party(
            session, name=body["name"], credit_code=body["credit_code"], kind=kind,
            roles=list(roles or (Role.BUYER,)), actor=SYSTEM)
        if granted:
            grant_what_roles_need(session, party)
    return Member(party, issued.raw)


def grant_what_roles_need(session: Session, party: Party) -> None:
    """A merchant's qualification and a certifier's accreditation, up to important data."""
    until = clock.now() + GRANTED_FOR
    if party.has_role(Role.MERCHANT):
        qualifications.grant_qualification(session, party_id=party.id, actor=SYSTEM, body={
            "max_classification": GRANTED_UP_TO, "valid_until": until,
            "evidence_ref": "Granted with the test party"})
    if party.has_role(Role.CERTIFIER):
        qualifications.grant_accreditation(session, party_id=party.id, actor=SYSTEM, body={
            "scopes": list(CertificationScope), "max_classification": GRANTED_UP_TO,
            "valid_until": until, "evidence_ref": "Granted with the test party"})


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for a raw API key."""
    return {"Authorization": f"Bearer {key}"}


T = TypeVar("T")
POOL_WORKERS = 16


def run_together(app: Flask, calls: list[Callable[[FlaskClient], T]]) -> list[T]:
    """Run each call from its own test client on a pool of threads, released together."""
    go = threading.Event()

    def one(call: Callable[[FlaskClient], T]) -> T:
        client = app.test_client()
        go.wait()
        return call(client)

    with ThreadPoolExecutor(max_workers=min(POOL_WORKERS, len(calls))) as pool:
        futures = [pool.submit(one, call) for call in calls]
        go.set()
        return [future.result(timeout=120) for future in futures]
