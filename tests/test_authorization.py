"""The authorization matrix: no party reaches another party's objects (OWASP API1, API3, API5).

1. Every route of `app.url_map` that carries an object id (a `<uuid:...>` converter), with
   each of its methods, has an entry in MATRIX saying who may succeed on it; a route missing
   from the matrix fails the test, so a new route cannot ship without one. The matrix holds
   63 routes. For each, party A's objects are created through the API (fresh ones per
   route), then the route is tried anonymously (401; 403 for a signed download link), as a
   party B of every role (buyer, merchant, operator, regulator, certifier, broker), as a
   party B holding all six roles at once, and as A and A's counterparts (an order's
   merchant, a payee of its proceeds): the contract's 403 or 404 where it forbids, success
   where it allows. Refused attempts go first and must leave the database as they found it
   (no row, no audit entry); the entitled follow, the owner last, each state-changing
   success on an object of its own. Successes the contract forbids must number 0, and so
   must answers other than the contract's (a 403 that reveals an object the contract hides
   with 404, say). Probes add A's ids paired with B's own (a key id under B's party), A's
   ids in bodies (a repair of A's finding, an order of A's unlisted product), A's hidden
   drafts behind other routes, and every list endpoint filtered on every party A's id. About
   850 attempts in all.
2. Server-owned fields (`id`, `status`, `merchant_id`, `buyer_id`, `unit_price`,
   `total_amount`, `paid_amount`, `refunded_amount`, `version`, `created_at`, `score`,
   `level`, ...) sent to 25 create and update endpoints are refused with a 422 naming the
   field (the schemas refuse unknown fields) and nothing is stored; the same request without
   them succeeds and the object read back carries the server's values. A key proposed to
   POST /parties/{id}/api-keys is ignored, a `version` sent with an edit only guards it, an
   Idempotency-Key replays only to the party that used it, privileged roles are not taken
   at self-registration, and a quality flag is shown to the merchant and overseers only.

Runtime (this module, each database, schema build included): 7-24 s on SQLite and 14-18 s
on PostgreSQL on a shared two-core machine; the matrix itself takes 3.6 s and 6.7 s.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import clock
from app.db import unit_of_work
from app.extensions import db
from app.parties.models import Party, PartyKind, Role
from credit.models import CreditEntry, Objection, Penalty, Repair
from licenses.models import LicenseUsage
from listings.artifacts import Artifact
from listings.downloads import download_for
from listings.models import AdmissionRule, Certification, GuidePrice, Listing, QualityReport
from listings.rights_models import Accreditation, Consent, Qualification
from orders.models import Demand, Dispute, Order
from settlement.models import PayoutAccount, SettlementRun
from tests.factories import Member, PartyBodyFactory, make_member
from tests.listings.factories import listing_body
from tests.orders.factories import give_completed_order, listed_product, order_body
from tests.support import ok

API = "/api/v1"
ANONYMOUS, OWNER, COUNTERPARTY, PAYEE = "anonymous", "owner", "counterparty", "payee"
# A public agency a joint purchase serves: it holds the order's licence with the buyer.
BENEFICIARY = "beneficiary"
ROLES = ("buyer", "merchant", "operator", "regulator", "certifier", "broker")
# Party B holding every role at once: past every role gate, an overseer and a trader, so
# only the object-level checks stand between it and A's objects.
EVERY_ROLE = "every_role"
OVERSEERS = frozenset({"operator", "regulator"})


def allow(*names: str | frozenset[str]) -> frozenset[str]:
    return frozenset().union(*({n} if isinstance(n, str) else n for n in names))


# --- the matrix ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Access:
    """Who may succeed on one route, and what everyone else is told.

    `roles` is the route's role gate (403 to a party holding none of them, before any lookup;
    empty: any party with a key passes). A party past the gate but not entitled to the object
    gets `hidden`: 404 where revealing that the object exists would leak it, else 403;
    those in `known` may see the object by another route and get 403 whatever `hidden` says.
    """

    setup: str
    allowed: frozenset[str]
    roles: tuple[str, ...] = ()
    hidden: int = 404
    ok: int = 200
    body: dict[str, Any] | Multipart | Callable[[], dict[str, Any]] | None = None
    idempotent: bool = False
    known: frozenset[str] = frozenset()
    anonymous: int = 401  # a request without a key


@dataclass(frozen=True)
class Multipart:
    """A multipart/form-data body: files as (content, filename), other fields as text; each
    request gets fresh streams of it."""

    fields: dict[str, Any]

    def form(self) -> dict[str, Any]:
        return {name: (BytesIO(value[0]), value[1]) if isinstance(value, tuple) else value
                for name, value in self.fields.items()}

    def with_field(self, name: str, value: Any) -> Multipart:
        return Multipart({**self.fields, name: value if isinstance(value, str) else str(value)})


UPLOAD = Multipart({"file": (b"segment_id,vehicles\nS00001,412\n", "flows.csv")})


REASON = {"reason": "Checked by the authorization matrix"}
BANK_ACCOUNT = {"method": "bank_file", "bank_name": "Bank of Shanghai", "account_name": "Payee",
                "account_number": "6222000011112222"}


def certification_body() -> dict[str, Any]:
    return {"rating": "A", "scopes": ["compliance"], "report_ref": "CERT-1",
            "valid_until": (clock.now() + timedelta(days=365)).isoformat()}


LISTING = f"{API}/listings/<uuid:listing_id>"
ORDER = f"{API}/orders/<uuid:order_id>"
PARTY = f"{API}/parties/<uuid:party_id>"
LICENSE = f"{API}/licenses/<uuid:license_id>"
MATRIX: dict[tuple[str, str], Access] = {
    # Listings: a merchant's draft is its own (and the overseers') to see; public once listed.
    ("GET", LISTING):
        Access("draft_listing", allow(OWNER, OVERSEERS)),
    ("PATCH", LISTING):
        Access("draft_listing", allow(OWNER), body={"title": "Edited by its owner"}),
    ("POST", f"{LISTING}/submit"):
        Access("draft_listing", allow(OWNER), roles=("merchant",)),
    ("POST", f"{LISTING}/review"):
        Access("pending_listing", allow("operator"), roles=("operator",),
               body={"decision": "approve", **REASON}),
    ("POST", f"{LISTING}/suspend"):
        Access("listed_listing", allow("operator"), roles=("operator",), body=REASON),
    ("POST", f"{LISTING}/relist"):
        Access("suspended_listing", allow("operator"), roles=("operator",), body=REASON),
    ("POST", f"{LISTING}/delist"):
        Access("listed_listing", allow(OWNER, "operator"), roles=("merchant", "operator"),
               body=REASON),
    ("POST", f"{LISTING}/certifications"):
        Access("pending_listing", allow("certifier"), roles=("certifier",), ok=201,
               body=certification_body),
    ("POST", f"{LISTING}/clear-flag"):
        Access("flagged_listing", allow("operator"), roles=("operator",), body=REASON),
    ("GET", f"{LISTING}/trace"):
        Access("draft_listing", allow(OWNER, OVERSEERS)),
    # Artifacts are never public: their merchant uploads and lists them.
    ("POST", f"{LISTING}/artifacts"):
        Access("draft_listing", allow(OWNER), roles=("merchant",), ok=201, body=UPLOAD),
    ("GET", f"{LISTING}/artifacts"):
        Access("draft_listing", allow(OWNER)),
    # A signed download link is its own permission (as an S3 presigned URL is): its holder,
    # the buyer it was issued to, downloads with it and no key; without it, or with it
    # altered, everyone is refused, anonymous callers too.
    ("GET", f"{API}/artifacts/<uuid:artifact_id>/content"):
        Access("download_link", allow(OWNER), hidden=403, anonymous=403),
    # A listed product's certificate is public; the owner's suspended one is refused (409).
    ("GET", f"{LISTING}/certificate"):
        Access("listed_listing", allow(OWNER, OVERSEERS, "buyer", "merchant", "certifier",
                                       "broker")),
    # Consents: the party asked decides; the listing's merchant (the counterparty) and
    # everyone else are not told the request exists.
    ("POST", f"{API}/consents/<uuid:consent_id>/decide"):
        Access("consent_request", allow(OWNER), body={"decision": "accept", "note": None}),
    ("GET", f"{LISTING}/consents"):
        Access("named_listing", allow(OWNER, OVERSEERS)),
    # Certifications: withdrawn by the body that issued them or an operator; another body
    # is not told the certification exists.
    ("POST", f"{API}/certifications/<uuid:certification_id>/revoke"):
        Access("certification", allow(OWNER, "operator"), roles=("certifier", "operator"),
               body=REASON),
    ("GET", f"{LISTING}/price-guidance"):
        Access("draft_listing", allow(OWNER, OVERSEERS)),
    # A listed product is public: others are refused the demands it meets with 403.
    ("GET", f"{LISTING}/matches"):
        Access("listed_listing", allow(OWNER, OVERSEERS), hidden=403),
    # The owner is a buyer with a completed order of the (public) listing.
    ("POST", f"{LISTING}/quality-reports"):
        Access("reported_listing", allow(OWNER), roles=("buyer",), hidden=403, ok=201,
               body={"score": 4, "issue": None}),
    ("DELETE", f"{API}/admission-rules/<uuid:rule_id>"):
        Access("admission_rule", allow(OWNER, "operator"), roles=("operator",), ok=204),
    # Orders: the owner is the buyer, the counterparty the merchant.
    ("GET", ORDER):
        Access("pending_order", allow(OWNER, COUNTERPARTY, OVERSEERS)),
    # The voucher: the order's parties and the overseers (its first request issues it).
    ("GET", f"{ORDER}/voucher"):
        Access("completed_order", allow(OWNER, COUNTERPARTY, OVERSEERS)),
    ("GET", f"{ORDER}/payment"):
        Access("pending_order", allow(OWNER), roles=("buyer",)),
    # A paid, undelivered order: its cancellation refunds the buyer (unpaid ones pass the
    # same checks).
    ("POST", f"{ORDER}/cancel"):
        Access("paid_order", allow(OWNER), roles=("buyer",), idempotent=True),
    ("POST", f"{ORDER}/payments/confirm"):
        Access("pending_order", allow("operator"), roles=("operator",), idempotent=True,
               body={"reference": "BANK-AUTHZ-1"}),
    ("POST", f"{ORDER}/deliver"):
        Access("paid_order", allow(COUNTERPARTY), roles=("merchant",),
               body={"delivery_ref": "s3://d/1", "checksum": "sha256:0"}),
    ("POST", f"{ORDER}/accept"):
        Access("delivered_order", allow(OWNER), roles=("buyer",)),
    ("POST", f"{ORDER}/disputes"):
        Access("delivered_order", allow(OWNER), roles=("buyer",), ok=201,
               body={"reason": "Half the rows are empty"}),
    ("POST", f"{API}/disputes/<uuid:dispute_id>/resolve"):
        Access("disputed_order", allow("operator"), roles=("operator",), idempotent=True,
               body={"outcome": "rejected", "note": "Delivered as described"}),
    # Settlement: the merchant and overseers see every line, a payee its own, the buyer none.
    ("GET", f"{ORDER}/allocations"):
        Access("settled_order", allow(COUNTERPARTY, PAYEE, OVERSEERS)),
    # Runs and batches are the exchange's: the owner is the operator who ran the settlement,
    # the counterparty a payee in it.
    ("GET", f"{API}/settlement/runs/<uuid:run_id>"):
        Access("settlement_run", allow(OWNER, OVERSEERS), roles=("operator", "regulator")),
    ("GET", f"{API}/payout-batches/<uuid:batch_id>"):
        Access("payout_batch", allow(OWNER, OVERSEERS), roles=("operator", "regulator")),
    ("GET", f"{API}/payout-batches/<uuid:batch_id>/file"):
        Access("payout_batch", allow(OWNER, "operator"), roles=("operator",)),
    ("POST", f"{API}/payout-batches/<uuid:batch_id>/confirm"):
        Access("payout_batch", allow(OWNER, "operator"), roles=("operator",), idempotent=True,
               body={"failed": []}),
    # Parties: the party itself and the overseers (keys and payout accounts: operators).
    ("GET", PARTY):
        Access("party", allow(OWNER, OVERSEERS), hidden=403),
    ("GET", f"{PARTY}/api-keys"):
        Access("party", allow(OWNER, "operator"), hidden=403),
    ("POST", f"{PARTY}/api-keys"):
        Access("party", allow(OWNER, "operator"), hidden=403, ok=201),
    ("DELETE", f"{PARTY}/api-keys/<uuid:key_id>"):
        Access("party_key", allow(OWNER, "operator"), hidden=403, ok=204),
    ("GET", f"{PARTY}/balance"):
        Access("paid_payee", allow(OWNER, OVERSEERS)),
    ("GET", f"{PARTY}/statement"):
        Access("paid_payee", allow(OWNER, OVERSEERS)),
    # Qualifications and accreditations: granted by operators; a party's qualifications are
    # its own and the overseers' to read, a certifier's accreditations everyone's.
    ("POST", f"{PARTY}/qualifications"):
        Access("party", allow("operator"), roles=("operator",), ok=201,
               body=lambda: {"max_classification": "sensitive", "evidence_ref": "QUAL-1",
                             "valid_until": (clock.now() + timedelta(days=365)).isoformat()}),
    ("GET", f"{PARTY}/qualifications"):
        Access("party", allow(OWNER, OVERSEERS), hidden=403),
    ("POST", f"{API}/certifiers/<uuid:party_id>/accreditations"):
        Access("certifier_party", allow("operator"), roles=("operator",), ok=201,
               body=lambda: {"scopes": ["compliance"], "max_classification": "sensitive",
                             "evidence_ref": "CNAS-1",
                             "valid_until": (clock.now() + timedelta(days=365)).isoformat()}),
    ("GET", f"{API}/certifiers/<uuid:party_id>/accreditations"):
        Access("certifier_party", allow(OWNER, OVERSEERS, "buyer", "merchant", "certifier",
                                        "broker")),
    ("GET", f"{PARTY}/payout-account"):
        Access("payout_account", allow(OWNER, OVERSEERS)),
    ("PUT", f"{PARTY}/payout-account"):
        Access("party", allow(OWNER), body=BANK_ACCOUNT),
    # Credit: the owner is the party the record is about.
    ("GET", f"{API}/credit/parties/<uuid:party_id>"):
        Access("party", allow(OWNER, OVERSEERS)),
    ("POST", f"{API}/credit/events/<uuid:event_id>/objections"):
        Access("credit_finding", allow(OWNER), ok=201,
               body={"reason": "It was not late", "evidence_ref": None}),
    ("POST", f"{API}/credit/objections/<uuid:objection_id>/decide"):
        Access("credit_objection", allow("regulator"), roles=("regulator",),
               body={"decision": "upheld", "note": "The finding stands"}),
    ("POST", f"{API}/credit/repairs/<uuid:repair_id>/decide"):
        Access("credit_repair", allow("regulator"), roles=("regulator",),
               body={"decision": "rejected", "note": "Not yet"}),
    ("POST", f"{API}/credit/penalties/<uuid:penalty_id>/payment"):
        Access("credit_fine", allow(OVERSEERS), roles=("operator", "regulator")),
    # Demands: the buyer's own (the overseers read them).
    ("GET", f"{API}/demands/<uuid:demand_id>"):
        Access("demand", allow(OWNER, OVERSEERS)),
    ("POST", f"{API}/demands/<uuid:demand_id>/cancel"):
        Access("demand", allow(OWNER), roles=("buyer",)),
    ("GET", f"{API}/demands/<uuid:demand_id>/matches"):
        Access("demand", allow(OWNER, OVERSEERS)),
    # Licences: the owner is the buyer, the counterparty the merchant, the beneficiary a public
    # agency the purchase serves.
    ("GET", LICENSE):
        Access("pending_license", allow(OWNER, BENEFICIARY, COUNTERPARTY, OVERSEERS)),
    ("POST", f"{LICENSE}/suspend"):
        Access("active_license", allow(OVERSEERS), roles=("operator", "regulator"), body=REASON),
    ("POST", f"{LICENSE}/reinstate"):
        Access("suspended_license", allow(OVERSEERS), roles=("operator", "regulator"),
               body=REASON),
    ("POST", f"{LICENSE}/revoke"):
        Access("active_license", allow(OVERSEERS), roles=("operator", "regulator"),
               body={**REASON, "fault_party": "buyer", "kind": "resale_beyond_scope"}),
    # Tokens are the holders': the merchant and the overseers, who see the licence, get 403.
    ("POST", f"{LICENSE}/tokens"):
        Access("active_license", allow(OWNER, BENEFICIARY), ok=201,
               known=frozenset({COUNTERPARTY, *OVERSEERS})),
    ("GET", f"{LICENSE}/download"):
        Access("file_license", allow(OWNER, BENEFICIARY), ok=303,
               known=frozenset({COUNTERPARTY, *OVERSEERS})),
    # A renewal is its buyer's order: a beneficiary (a buyer too) sees the licence, gets 403.
    ("POST", f"{LICENSE}/renew"):
        Access("active_license", allow(OWNER), roles=("buyer",), ok=201, idempotent=True,
               known=frozenset({BENEFICIARY})),
    ("POST", f"{LICENSE}/usage"):
        Access("per_call_license", allow(COUNTERPARTY), roles=("merchant",), ok=201,
               idempotent=True, body={"calls": 1, "period_start": "2026-06-01T00:00:00Z",
                                      "period_end": "2026-06-02T00:00:00Z"}),
}


def id_bearing_routes(app: Flask) -> set[tuple[str, str]]:
    return {(method, rule.rule) for rule in app.url_map.iter_rules() if "<uuid:" in rule.rule
            for method in rule.methods - {"HEAD", "OPTIONS"}}


# --- the world the routes are tried in -------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    """An extra attempt that must be refused: A's id paired with the caller's own, an id in
    a body, or a related object A keeps hidden."""

    actor: str
    method: str
    path: str
    status: int
    body: Any = None


@dataclass
class Case:
    """Party A's object for one route: the path's ids, A and its counterparts, probes, and a
    check of what an entitled party is shown."""

    ids: dict[str, str]
    parties: dict[str, Member]
    probes: list[Probe] = field(default_factory=list)
    check: Callable[[str, Member, TestResponse], None] | None = None
    query: dict[str, str] = field(default_factory=dict)  # sent by the entitled alone


@dataclass
class World:
    client: FlaskClient
    staff: dict[str, Member]  # do the setup steps: an operator, a regulator
    outsiders: dict[str, Member]  # party B: one per role, and one holding them all
    owners: dict[str, Member] = field(default_factory=dict)  # every party A, by id

    def call(self, who: Member | None, method: str, path: str, body: Any = None,
             idempotent: bool = False, **query: Any) -> TestResponse:
        headers = dict(who.headers) if who else {}
        if idempotent:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        if isinstance(body, Multipart):
            return self.client.open(path, method=method, data=body.form(), headers=headers,
                                    content_type="multipart/form-data",
                                    query_string=query or None)
        return self.client.open(path, method=method, json=body, headers=headers,
                                query_string=query or None)

    # listings
    def draft(self, merchant: Member, **overrides: Any) -> str:
        return ok(self.call(merchant, "POST", f"{API}/listings",
                            listing_body(merchant, **overrides)), 201)["id"]

    def pending(self, merchant: Member) -> str:
        listing_id = self.draft(merchant)
        submitted = ok(self.call(merchant, "POST", f"{API}/listings/{listing_id}/submit"))
        assert submitted["status"] == "pending_review", submitted
        return listing_id

    def listed(self, merchant: Member, **overrides: Any) -> str:
        overrides.setdefault("licenses_available", None)
        return listed_product(self.client, merchant, **overrides)["id"]

    # orders
    def order(self, state: str, merchant: Member | None = None,
              **listing: Any) -> tuple[Member, Member, dict[str, Any]]:
        """An order of a new buyer from a (new) merchant, taken to `state`."""
        merchant, buyer = merchant or make_member(Role.MERCHANT), make_member(Role.BUYER)
        listing_id = self.listed(merchant, **listing)
        order = ok(self.call(buyer, "POST", f"{API}/orders",
                             order_body({"id": listing_id})), 201)
        path = f"{API}/orders/{order['id']}"
        steps = ["pending", "paid", "delivered", "disputed"]
        if state == "completed":
            steps = ["pending", "paid", "delivered", "completed"]
        for step in steps[1:steps.index(state) + 1]:
            if step == "paid":
                ok(self.call(self.staff["operator"], "POST", f"{path}/payments/confirm",
                             {"reference": "BANK-1"}, idempotent=True))
            elif step == "delivered":
                ok(self.call(merchant, "POST", f"{path}/deliver",
                             {"delivery_ref": "s3://d/1", "checksum": "sha256:0"}))
            elif step == "completed":
                ok(self.call(buyer, "POST", f"{path}/accept"))
            elif step == "disputed":
                order["dispute_id"] = ok(self.call(buyer, "POST", f"{path}/disputes",
                                                   {"reason": "Empty file"}), 201)["id"]
        return buyer, merchant, order

    def settle(self, operator: Member | None = None) -> dict[str, Any]:
        return ok(self.call(operator or self.staff["operator"], "POST",
                            f"{API}/settlement/runs", {}, idempotent=True), 201)

    def set_bank_account(self, member: Member) -> None:
        ok(self.call(member, "PUT", f"{API}/parties/{member.id}/payout-account",
                     BANK_ACCOUNT))

    def finding(self, party: Member) -> str:
        return ok(self.call(self.staff["regulator"], "POST", f"{API}/credit/events", {
            "party_id": party.id, "kind": "late_delivery", "severity": "minor",
            "description": "Delivered two days late", "evidence_ref": "case-1"}), 201)["id"]


# --- setups: party A's objects, made through the API -----------------------------------------

def draft_listing(w: World) -> Case:
    merchant = make_member(Role.MERCHANT)
    return Case({"listing_id": w.draft(merchant)}, {OWNER: merchant})


def pending_listing(w: World) -> Case:
    merchant = make_member(Role.MERCHANT)
    other_draft = w.draft(merchant)
    listing_id = w.pending(merchant)
    # A draft is nobody's to certify, and no certifier may learn that it exists; a product
    # never on the market is not revealed to a buyer naming it in an order either.
    return Case({"listing_id": listing_id}, {OWNER: merchant}, probes=[
        Probe("certifier", "POST", f"{API}/listings/{other_draft}/certifications", 404,
              certification_body()),
        *(Probe("buyer", "POST", f"{API}/orders", 404, order_body({"id": hidden}))
          for hidden in (other_draft, listing_id))])


def listed_listing(w: World) -> Case:
    merchant = make_member(Role.MERCHANT)
    other_draft = w.draft(merchant)
    return Case({"listing_id": w.listed(merchant)}, {OWNER: merchant}, probes=[
        Probe(role, "GET", f"{API}/listings/{other_draft}/matches", 404)
        for role in ("buyer", "merchant", "broker", "certifier")])


def suspended_listing(w: World) -> Case:
    case = listed_listing(w)
    ok(w.call(w.staff["operator"], "POST", f"{API}/listings/{case.ids['listing_id']}/suspend",
              REASON))
    return case


def certification(w: World) -> Case:
    """A pending listing's certification; A is the body that issued it."""
    merchant, certifier = make_member(Role.MERCHANT), make_member(Role.CERTIFIER)
    issued = ok(w.call(certifier, "POST", f"{API}/listings/{w.pending(merchant)}/certifications",
                       certification_body()), 201)
    return Case({"certification_id": issued["id"]}, {OWNER: certifier, COUNTERPARTY: merchant})


def certifier_party(w: World) -> Case:
    member = make_member(Role.CERTIFIER)
    return Case({"party_id": member.id}, {OWNER: member})


def named_listing(w: World) -> Case:
    """A draft naming another party as its holder, submitted once: the holder was asked."""
    merchant, holder = make_member(Role.MERCHANT), make_member(Role.MERCHANT)
    listing_id = w.draft(merchant, rights={"holder_id": holder.id, "processor_ids": [],
                                           "operator_id": merchant.id})
    asked = w.call(merchant, "POST", f"{API}/listings/{listing_id}/submit")
    assert asked.status_code == 409, asked.get_json()
    return Case({"listing_id": listing_id}, {OWNER: merchant, COUNTERPARTY: holder})


def consent_request(w: World) -> Case:
    case = named_listing(w)
    holder, merchant = case.parties[COUNTERPARTY], case.parties[OWNER]
    [request] = ok(w.call(holder, "GET", f"{API}/consents"))
    return Case({"consent_id": request["id"]}, {OWNER: holder, COUNTERPARTY: merchant})


def flag(listing_id: str) -> None:
    """A quality flag, as the evaluation job sets it (straight in the database)."""
    with unit_of_work() as session:
        listing = session.get(Listing, uuid.UUID(listing_id))
        assert listing is not None
        listing.flag_for_review("Poor quality: average 1.5 over 4 buyer reports.")


def flagged_listing(w: World) -> Case:
    case = listed_listing(w)
    flag(case.ids["listing_id"])
    return case


def reported_listing(w: World) -> Case:
    """A listed product and a buyer with a completed order of it (the API's precondition of
    a quality report, recorded straight in the database)."""
    merchant, buyer = make_member(Role.MERCHANT), make_member(Role.BUYER)
    listing_id = w.listed(merchant)
    give_completed_order(w.client, buyer.id, listing_id)
    other_draft = w.draft(merchant)
    # A draft is not revealed to a buyer (nor to the owner, who has no order of it).
    probes = [Probe(role, "POST", f"{API}/listings/{other_draft}/quality-reports", 404,
                    {"score": 4, "issue": None}) for role in ("buyer", OWNER)]
    return Case({"listing_id": listing_id}, {OWNER: buyer, COUNTERPARTY: merchant}, probes)


def admission_rule(w: World) -> Case:
    operator = make_member(Role.OPERATOR)
    rule = ok(w.call(operator, "POST", f"{API}/admission-rules", {
        "list": "negative", "name": "Matrix probe", "reason": "Matches nothing",
        "keywords": [f"nothing-{uuid.uuid4().hex}"]}), 201)
    return Case({"rule_id": rule["id"]}, {OWNER: operator})


def order_case(state: str) -> Callable[[World], Case]:
    def setup(w: World) -> Case:
        buyer, merchant, order = w.order(state)
        ids = {"order_id": order["id"]}
        if "dispute_id" in order:
            ids["dispute_id"] = order["dispute_id"]
        return Case(ids, {OWNER: buyer, COUNTERPARTY: merchant})
    return setup


def settled_order(w: World) -> Case:
    """A settled order whose proceeds a collector shares with the merchant."""
    collector, merchant = make_member(Role.MERCHANT), make_member(Role.MERCHANT)
    buyer, _, order = w.order("completed", merchant, revenue_shares=[
        {"party_id": collector.id, "role": "collector", "basis": "contribution", "weight": 40},
        {"party_id": merchant.id, "role": "holder", "basis": "contribution", "weight": 60}])
    w.settle()

    def lines_seen(actor: str, member: Member, response: TestResponse) -> None:
        lines = response.get_json()
        if actor == PAYEE:
            assert {line["party_id"] for line in lines} == {member.id}, lines
        else:
            assert sum(line["amount"] for line in lines) == order["total_amount"], lines

    return Case({"order_id": order["id"]},
                {OWNER: buyer, COUNTERPARTY: merchant, PAYEE: collector}, check=lines_seen)


def paid_payee(w: World) -> Case:
    """A merchant with money from a settled order on its balance and statement."""
    _, merchant, _ = w.order("completed")
    w.settle()
    return Case({"party_id": merchant.id}, {OWNER: merchant})


def settlement_run(w: World) -> Case:
    operator = make_member(Role.OPERATOR)
    _, merchant, _ = w.order("completed")
    run = w.settle(operator)
    return Case({"run_id": run["id"]}, {OWNER: operator, COUNTERPARTY: merchant})


def payout_batch(w: World) -> Case:
    """A bank-file batch of a run: the merchant, paid by bank, is a payee in it."""
    operator = make_member(Role.OPERATOR)
    _, merchant, _ = w.order("completed")
    w.set_bank_account(merchant)
    w.settle(operator)
    payouts = ok(w.call(merchant, "GET", f"{API}/payouts"))
    assert len(payouts) == 1, payouts
    return Case({"batch_id": payouts[0]["batch_id"]}, {OWNER: operator, COUNTERPARTY: merchant})


def party(w: World) -> Case:
    member = make_member(Role.MERCHANT)
    return Case({"party_id": member.id}, {OWNER: member})


def party_key(w: World) -> Case:
    """A second key of party A; naming one's own party with A's key id reaches nothing."""
    member = make_member(Role.MERCHANT)
    key = ok(w.call(member, "POST", f"{API}/parties/{member.id}/api-keys"), 201)
    probes = [Probe(role, "DELETE", f"{API}/parties/{b.id}/api-keys/{key['id']}", 404)
              for role, b in w.outsiders.items()]
    return Case({"party_id": member.id, "key_id": key["id"]}, {OWNER: member}, probes)


def payout_account(w: World) -> Case:
    case = party(w)
    w.set_bank_account(case.parties[OWNER])
    return case


def credit_finding(w: World) -> Case:
    member = make_member(Role.MERCHANT)
    return Case({"event_id": w.finding(member)}, {OWNER: member})


def credit_objection(w: World) -> Case:
    member = make_member(Role.MERCHANT)
    objection = ok(w.call(member, "POST", f"{API}/credit/events/{w.finding(member)}/objections",
                          {"reason": "It was on time", "evidence_ref": None}), 201)
    return Case({"objection_id": objection["id"]}, {OWNER: member})


def credit_repair(w: World) -> Case:
    member = make_member(Role.MERCHANT)
    event_id = w.finding(member)
    clock.advance(timedelta(days=91, minutes=1))  # past the minimum publicity period
    repair = ok(w.call(member, "POST", f"{API}/credit/repairs", {
        "event_ids": [event_id], "measures": "Retrained the delivery team",
        "commitment": True, "evidence_ref": None}), 201)
    # Nobody else may apply for the repair of A's finding (its id in the body).
    body = {"event_ids": [event_id], "measures": "Not mine to repair", "commitment": True,
            "evidence_ref": None}
    return Case({"repair_id": repair["id"]}, {OWNER: member}, probes=[
        Probe(role, "POST", f"{API}/credit/repairs", 404, body)
        for role in (*ROLES, EVERY_ROLE)])


def credit_fine(w: World) -> Case:
    member = make_member(Role.MERCHANT)
    penalty = ok(w.call(w.staff["operator"], "POST", f"{API}/credit/penalties", {
        "party_id": member.id, "kind": "fine", "days": 30, "amount": 50_000}), 201)
    return Case({"penalty_id": penalty["id"]}, {OWNER: member})


def demand(w: World) -> Case:
    buyer = make_member(Role.BUYER)
    posted = ok(w.call(buyer, "POST", f"{API}/demands", {
        "category": "transport", "purpose": "research", "max_unit_price": 200_000}), 201)
    return Case({"demand_id": posted["id"]}, {OWNER: buyer})


def download_link(w: World) -> Case:
    """A buyer's link to an artifact of a listed product, as its licence's download issues
    it; the link altered, or naming another artifact, opens nothing."""
    merchant, buyer = make_member(Role.MERCHANT), make_member(Role.BUYER)
    listing_id = w.listed(merchant)
    artifact = ok(w.call(merchant, "POST", f"{API}/listings/{listing_id}/artifacts", UPLOAD),
                  201)
    other = ok(w.call(merchant, "POST", f"{API}/listings/{listing_id}/artifacts", UPLOAD), 201)
    with w.client.application.test_request_context(), unit_of_work() as session:
        url = download_for(session, artifact=session.get(Artifact, uuid.UUID(artifact["id"])),
                           party_id=uuid.UUID(buyer.id))
    query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
    content = f"{API}/artifacts/{artifact['id']}/content"
    probes = [Probe(OWNER, "GET", f"{content}?{urlencode({**query, 'sig': 'A' + query['sig']})}",
                    403),
              Probe(OWNER, "GET", f"{content}?{urlencode({**query, 'party': merchant.id})}",
                    403),
              Probe(COUNTERPARTY, "GET", f"{API}/artifacts/{other['id']}/content?"
                    f"{urlencode(query)}", 403)]
    return Case({"artifact_id": artifact["id"]}, {OWNER: buyer, COUNTERPARTY: merchant},
                probes, query=query)


def license_case(state: str, **listing: Any) -> Callable[[World], Case]:
    """The licence of a joint purchase (a public agency its beneficiary), its order taken to
    `state`."""
    def setup(w: World) -> Case:
        merchant, buyer = make_member(Role.MERCHANT), make_member(Role.BUYER)
        beneficiary = make_member(Role.BUYER, kind=PartyKind.PUBLIC_AGENCY)
        order = ok(w.call(buyer, "POST", f"{API}/orders", order_body(
            {"id": w.listed(merchant, **listing)}, beneficiaries=[beneficiary.id])), 201)
        if state != "pending":
            ok(w.call(w.staff["operator"], "POST", f"{API}/orders/{order['id']}/payments/confirm",
                      {"reference": "BANK-1"}, idempotent=True))
            delivery = {"delivery_ref": "api-credential:1", "checksum": "sha256:0"}
            if state == "file":  # a file the exchange holds
                delivery = {"artifact_id": ok(w.call(
                    merchant, "POST", f"{API}/listings/{order['listing_id']}/artifacts",
                    UPLOAD), 201)["id"]}
            ok(w.call(merchant, "POST", f"{API}/orders/{order['id']}/deliver", delivery))
        if state == "suspended":
            ok(w.call(w.staff["operator"], "POST", f"{API}/licenses/{order['license_id']}/suspend",
                      REASON))
        return Case({"license_id": order["license_id"]},
                    {OWNER: buyer, COUNTERPARTY: merchant, BENEFICIARY: beneficiary})
    return setup


SETUPS: dict[str, Callable[[World], Case]] = {
    "draft_listing": draft_listing, "pending_listing": pending_listing,
    "listed_listing": listed_listing, "suspended_listing": suspended_listing,
    "flagged_listing": flagged_listing, "reported_listing": reported_listing,
    "named_listing": named_listing, "consent_request": consent_request,
    "certification": certification, "certifier_party": certifier_party,
    "admission_rule": admission_rule, "pending_order": order_case("pending"),
    "paid_order": order_case("paid"), "delivered_order": order_case("delivered"),
    "disputed_order": order_case("disputed"), "completed_order": order_case("completed"),
    "settled_order": settled_order,
    "paid_payee": paid_payee, "settlement_run": settlement_run, "payout_batch": payout_batch,
    "party": party, "party_key": party_key, "payout_account": payout_account,
    "credit_finding": credit_finding, "credit_objection": credit_objection,
    "credit_repair": credit_repair, "credit_fine": credit_fine, "demand": demand,
    "download_link": download_link,
    "pending_license": license_case("pending"), "active_license": license_case("active"),
    "suspended_license": license_case("suspended"),
    "per_call_license": license_case("active", price_model="per_call", unit_price=100),
    "file_license": license_case("file", delivery_mode="download", price_model="one_time"),
}


# --- running the matrix ----------------------------------------------------------------------

def footprint() -> int:
    """Rows in every table: a refused attempt must not add one (nor an audit entry)."""
    counts = [sa.select(sa.func.count()).select_from(table).scalar_subquery()
              for table in db.metadata.sorted_tables]
    with db.engine.connect() as connection:
        return sum(connection.execute(sa.select(*counts)).one())


def roles_of(member: Member) -> set[str]:
    return set(member.party.roles)


def entitled(access: Access, actor: str) -> bool:
    """Named in the matrix, or holding every role where some role is entitled."""
    return actor in access.allowed or (actor == EVERY_ROLE and bool(access.allowed & {*ROLES}))


def expected_status(access: Access, actor: str, member: Member | None) -> int | set[int]:
    if member is None:
        return access.anonymous
    if entitled(access, actor):
        return access.ok
    if actor == EVERY_ROLE:
        # An overseer may learn that the object exists (403), or not be told (404).
        return {403, 404}
    if access.roles and not roles_of(member) & set(access.roles):
        return 403
    if actor in access.known:
        return 403
    return access.hidden


def fill(rule: str, ids: dict[str, str]) -> str:
    return re.sub(r"<uuid:(\w+)>", lambda m: ids[m.group(1)], rule)


@dataclass
class Tally:
    attempts: int = 0
    forbidden_successes: list[str] = field(default_factory=list)
    wrong_answers: list[str] = field(default_factory=list)
    side_effects: list[str] = field(default_factory=list)

    def record(self, label: str, response: TestResponse, expected: int | set[int],
               permitted: bool) -> None:
        self.attempts += 1
        got = response.status_code
        if 200 <= got < 300 and not permitted:
            self.forbidden_successes.append(f"{label} → {got}")
        if got not in (expected if isinstance(expected, set) else {expected}):
            body = response.get_json(silent=True)
            detail = body.get("code") if isinstance(body, dict) else "(not a problem)"
            self.wrong_answers.append(f"{label} → {got} {detail}, expected {expected}")


def try_route(w: World, tally: Tally, method: str, rule: str, access: Access) -> None:
    """Everyone not entitled first, on one object (nothing may change); then each entitled
    party, the owner last, a state-changing success on a fresh object of its own."""
    body = access.body() if callable(access.body) else access.body
    case = SETUPS[access.setup](w)
    w.owners.update({member.id: member for member in case.parties.values()})
    actors: dict[str, Member | None] = {ANONYMOUS: None, **w.outsiders, **case.parties}
    refused = [name for name in actors if not entitled(access, name)]
    succeeding = sorted((name for name in actors if entitled(access, name)),
                        key=lambda name: name == OWNER)
    assert succeeding, f"nobody may use {method} {rule}?"
    for name in succeeding:  # the matrix agrees with its own role gates
        member = actors[name]
        assert member is not None and (
            not access.roles or roles_of(member) & set(access.roles)), (rule, name)

    before = footprint()
    path = fill(rule, case.ids)
    for name in refused:
        response = w.call(actors[name], method, path, body, access.idempotent)
        tally.record(f"{method} {rule} as {name}", response,
                     expected_status(access, name, actors[name]), permitted=False)
    for probe in case.probes:
        response = w.call(case.parties.get(probe.actor) or w.outsiders[probe.actor],
                          probe.method, probe.path, probe.body, access.idempotent)
        tally.record(f"{probe.method} {probe.path} as {probe.actor} (probe of {rule})",
                     response, probe.status, permitted=False)
    if footprint() != before:
        tally.side_effects.append(f"{method} {rule}: refused attempts changed the database")

    mutating = method != "GET"
    for index, name in enumerate(succeeding):
        if mutating and index:
            case = SETUPS[access.setup](w)  # a fresh object: the first success changed its
            path = fill(rule, case.ids)
            actors = {ANONYMOUS: None, **w.outsiders, **case.parties}
        member = actors[name]
        assert member is not None
        response = w.call(member, method, path, body, access.idempotent, **case.query)
        tally.record(f"{method} {rule} as {name}", response, access.ok, permitted=True)
        if case.check and response.status_code == access.ok:
            case.check(name, member, response)


def lists_leak_nothing(w: World, tally: Tally) -> None:
    """After the matrix, parties that own nothing list nothing of anyone else's, even when
    they filter on another party's id."""
    traders = ("buyer", "merchant", "broker", "certifier")
    lists: list[tuple[str, str, dict[str, Any]]] = [
        (name, path, query) for name in traders
        for path, query in [("orders", {}), ("demands", {}), ("payouts", {}), ("consents", {}),
                            ("licenses", {}),
                            *(("listings", {"status": s}) for s in
                              ("draft", "pending_review", "rejected", "suspended", "delisted"))]]
    for index, party_id in enumerate(w.owners):
        name = traders[index % len(traders)]
        lists += [(name, "payouts", {"party_id": party_id}),
                  (name, "listings", {"merchant_id": party_id, "status": "draft"})]
    for name, path, query in lists:
        response = w.call(w.outsiders[name], "GET", f"{API}/{path}", **query)
        leaked = response.status_code == 200 and response.get_json() != []
        tally.record(f"GET /{path}?{query} as {name} ({response.get_json()})", response,
                     200, permitted=not leaked)


@pytest.fixture
def world(app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch,
          tmp_path: Path) -> World:
    monkeypatch.setitem(app.config, "PAYOUT_FILE_DIR", str(tmp_path / "payouts"))
    monkeypatch.setitem(app.config, "ARTIFACT_STORAGE", f"file://{tmp_path / 'artifacts'}")
    staff = {"operator": make_member(Role.OPERATOR), "regulator": make_member(Role.REGULATOR)}
    outsiders = {role: make_member(Role(role)) for role in ROLES}
    return World(client, staff, {**outsiders, EVERY_ROLE: make_member(*Role)})


def test_every_id_bearing_route_is_in_the_matrix(app: Flask) -> None:
    routes = id_bearing_routes(app)
    missing = sorted(routes - MATRIX.keys())
    stale = sorted(MATRIX.keys() - routes)
    assert not missing, f"id-bearing routes without an entry in MATRIX: {missing}"
    assert not stale, f"MATRIX entries for routes that no longer exist: {stale}"
    assert f"The matrix holds\n   {len(MATRIX)} routes" in (__doc__ or ""), (
        "update the route count in the module docstring")


def test_no_party_reaches_another_partys_objects(world: World, app: Flask) -> None:
    routes = id_bearing_routes(app)
    assert routes <= MATRIX.keys(), sorted(routes - MATRIX.keys())
    tally = Tally()
    for (method, rule), access in sorted(MATRIX.items(), key=lambda item: item[0][1]):
        try_route(world, tally, method, rule, access)
    lists_leak_nothing(world, tally)

    print(f"\nauthorization matrix: {len(MATRIX)} routes, {tally.attempts} attempts, "
          f"{len(tally.forbidden_successes)} forbidden successes")
    assert tally.attempts > 8 * len(MATRIX)
    assert tally.forbidden_successes == []
    assert tally.side_effects == []
    assert tally.wrong_answers == []


# --- server-owned fields ---------------------------------------------------------------------

EARLY = "2001-01-01T00:00:00+00:00"


@dataclass
class Write:
    """One create or update request, the server-owned fields to smuggle into it, and how to
    read back what is stored."""

    method: str
    path: str
    actor: Member | None
    body: dict[str, Any] | Multipart
    smuggled: dict[str, Any]
    model: Any = None  # its rows must not grow while the smuggling is refused
    read: Callable[[], dict[str, Any]] | None = None
    status: int = 201
    idempotent: bool = False
    verify: Callable[[dict[str, Any]], None] | None = None


def someone_else() -> str:
    return make_member(Role.MERCHANT, Role.BUYER).id


def common(**extra: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "created_at": EARLY, **extra}


def reader(w: World, member: Member, path: str) -> Callable[[], dict[str, Any]]:
    return lambda: ok(w.call(member, "GET", path))


def write_party(w: World) -> Write:
    return Write("POST", f"{API}/parties", None, dict(PartyBodyFactory()),
                 common(status="active", score=1000, level="A", api_key="dx_chosen-by-me",
                        api_key_id=str(uuid.uuid4()), blacklisted=False), model=Party)


def write_listing(w: World) -> Write:
    merchant = make_member(Role.MERCHANT)
    other = someone_else()

    def verify(listing: dict[str, Any]) -> None:
        assert (listing["merchant_id"], listing["status"], listing["version"]) == (
            merchant.id, "draft", 1)

    return Write("POST", f"{API}/listings", merchant, listing_body(merchant), common(
        merchant_id=other, status="listed", version=99, updated_at=EARLY, listed_at=EARLY,
        quality={"count": 9, "average": 5.0}, review_flag="x", admission={"decision": "x"},
        status_reason="pre-approved", price_warning="x", score=100), model=Listing,
        verify=verify)


def edit_listing(w: World) -> Write:
    merchant = make_member(Role.MERCHANT)
    listing_id = w.draft(merchant)
    path = f"{API}/listings/{listing_id}"
    return Write("PATCH", path, merchant, {"title": "A new title"}, common(
        merchant_id=someone_else(), status="listed", listed_at=EARLY,
        quality={"count": 9, "average": 5.0}, review_flag="x", admission={"decision": "x"},
        updated_at=EARLY), read=reader(w, merchant, path), status=200,
        verify=lambda listing: listing["status"] == "draft" and listing["version"] == 2)


def place_order(w: World) -> Write:
    merchant, buyer = make_member(Role.MERCHANT), make_member(Role.BUYER)
    listing = listed_product(w.client, merchant, licenses_available=None)

    def verify(order: dict[str, Any]) -> None:
        price = listing["unit_price"]
        assert (order["buyer_id"], order["merchant_id"], order["status"]) == (
            buyer.id, merchant.id, "pending_payment")
        assert (order["unit_price"], order["total_amount"], order["paid_amount"],
                order["refunded_amount"]) == (price, price, 0, 0)

    return Write("POST", f"{API}/orders", buyer, order_body(listing), common(
        status="paid", buyer_id=someone_else(), merchant_id=someone_else(), unit_price=1,
        total_amount=1, paid_amount=1, refunded_amount=5, currency="USD",
        license={"resale": True}, payment={"status": "succeeded"}, expires_at=EARLY,
        paid_at=EARLY, delivered_at=EARLY, completed_at=EARLY), model=Order,
        idempotent=True, verify=verify)


def post_demand(w: World) -> Write:
    buyer = make_member(Role.BUYER)
    return Write("POST", f"{API}/demands", buyer, {
        "category": "transport", "purpose": "research", "max_unit_price": 200_000}, common(
        buyer_id=someone_else(), status="matched", order_id=str(uuid.uuid4()),
        closed_at=EARLY, order={"id": str(uuid.uuid4())}), model=Demand, idempotent=True,
        verify=lambda demand: demand["buyer_id"] == buyer.id and demand["status"] == "open")


def set_guide_price(w: World) -> Write:
    operator = make_member(Role.OPERATOR)
    return Write("POST", f"{API}/guide-prices", operator, {
        "category": f"matrix-{uuid.uuid4().hex[:8]}", "reference_price": 100_000,
        "floor_pct": 20, "ceiling_pct": 30, "binding": False}, common(
        floor_price=1, ceiling_price=10**12, set_by=someone_else(), superseded_at=EARLY,
        superseded_by=str(uuid.uuid4()), in_force=False), model=GuidePrice,
        verify=lambda guide: (guide["floor_price"], guide["ceiling_price"],
                              guide["set_by"]) == (80_000, 130_000, operator.id))


def report_quality(w: World) -> Write:
    merchant, buyer = make_member(Role.MERCHANT), make_member(Role.BUYER)
    listing_id = w.listed(merchant)
    give_completed_order(w.client, buyer.id, listing_id)
    return Write("POST", f"{API}/listings/{listing_id}/quality-reports", buyer,
                 {"score": 4, "issue": None}, common(
                     listing_id=str(uuid.uuid4()), buyer_id=someone_else()),
                 model=QualityReport)


def open_dispute(w: World) -> Write:
    buyer, _, order = w.order("delivered")
    return Write("POST", f"{API}/orders/{order['id']}/disputes", buyer,
                 {"reason": "Half the rows are empty"}, common(
                     order_id=str(uuid.uuid4()), buyer_id=someone_else(), status="resolved",
                     outcome="refund_full", refund_amount=order["total_amount"],
                     note="granted", resolved_at=EARLY), model=Dispute,
                 verify=lambda d: d["outcome"] is None and d["buyer_id"] == buyer.id)


def resolve_dispute(w: World) -> Write:
    buyer, _, order = w.order("disputed")
    return Write("POST", f"{API}/disputes/{order['dispute_id']}/resolve",
                 w.staff["operator"], {"outcome": "rejected", "note": "As described"},
                 {"id": str(uuid.uuid4()), "status": "refunded", "resolved_by": someone_else(),
                  "resolved_at": EARLY, "buyer_id": someone_else(), "order_id":
                  str(uuid.uuid4())},
                 read=reader(w, buyer, f"{API}/orders/{order['id']}"), status=200,
                 idempotent=True)


def confirm_payment(w: World) -> Write:
    buyer, _, order = w.order("pending")
    return Write("POST", f"{API}/orders/{order['id']}/payments/confirm", w.staff["operator"],
                 {"reference": "BANK-9"}, {"amount": 1, "paid_amount": 1, "status": "completed",
                                           "paid_at": EARLY},
                 read=reader(w, buyer, f"{API}/orders/{order['id']}"), status=200,
                 idempotent=True, verify=lambda o: o["paid_amount"] == order["total_amount"])


def deliver(w: World) -> Write:
    buyer, merchant, order = w.order("paid")
    return Write("POST", f"{API}/orders/{order['id']}/deliver", merchant,
                 {"delivery_ref": "s3://d/1", "checksum": "sha256:0"},
                 {"status": "completed", "delivered_at": EARLY, "paid_amount": 1,
                  "completed_at": EARLY, "verified_delivery": True},
                 read=reader(w, buyer, f"{API}/orders/{order['id']}"), status=200,
                 verify=lambda o: o["verified_delivery"] is False)


def upload_artifact(w: World) -> Write:
    merchant = make_member(Role.MERCHANT)
    listing_id = w.draft(merchant)
    content = UPLOAD.fields["file"][0]
    return Write("POST", f"{API}/listings/{listing_id}/artifacts", merchant, UPLOAD, common(
        sha256="0" * 64, size=1, listing_id=str(uuid.uuid4()), merchant_id=someone_else(),
        storage_key="listings/x/y", uploaded_at=EARLY), model=Artifact,
        verify=lambda a: (a["sha256"], a["size"], a["listing_id"]) == (
            hashlib.sha256(content).hexdigest(), len(content), listing_id))


def set_payout_account(w: World) -> Write:
    member = make_member(Role.MERCHANT)
    path = f"{API}/parties/{member.id}/payout-account"
    return Write("PUT", path, member, dict(BANK_ACCOUNT),
                 {"party_id": someone_else(), "updated_at": EARLY}, model=PayoutAccount,
                 status=200, verify=lambda account: account["party_id"] == member.id)


def certify(w: World) -> Write:
    certifier = make_member(Role.CERTIFIER)
    listing_id = w.pending(make_member(Role.MERCHANT))
    return Write("POST", f"{API}/listings/{listing_id}/certifications", certifier,
                 certification_body(), common(certifier_id=someone_else(), issued_at=EARLY,
                                              listing_id=str(uuid.uuid4())),
                 model=Certification)


def object_to_finding(w: World) -> Write:
    member = make_member(Role.MERCHANT)
    return Write("POST", f"{API}/credit/events/{w.finding(member)}/objections", member,
                 {"reason": "It was on time", "evidence_ref": None}, common(
                     event_id=str(uuid.uuid4()), party_id=someone_else(), status="revoked",
                     note="granted", correction_id=str(uuid.uuid4()), decided_at=EARLY),
                 model=Objection, verify=lambda o: o["status"] == "pending")


def apply_for_repair(w: World) -> Write:
    member = make_member(Role.MERCHANT)
    event_id = w.finding(member)
    clock.advance(timedelta(days=91, minutes=1))
    return Write("POST", f"{API}/credit/repairs", member, {
        "event_ids": [event_id], "measures": "Retrained the team", "commitment": True,
        "evidence_ref": None}, common(party_id=someone_else(), status="approved",
                                      note="granted", decided_at=EARLY), model=Repair,
        verify=lambda r: (r["status"], r["party_id"]) == ("pending", member.id))


def record_credit_event(w: World) -> Write:
    member = make_member(Role.MERCHANT)
    return Write("POST", f"{API}/credit/events", w.staff["regulator"], {
        "party_id": member.id, "kind": "late_delivery", "severity": "minor",
        "description": "Late", "evidence_ref": None}, common(
        points=50, score=1000, level="A", status="revoked", hash="0" * 64,
        recorded_at=EARLY, occurred_at=EARLY, disputed=True, corrects=str(uuid.uuid4())),
        model=CreditEntry, verify=lambda e: e["points"] < 0 and e["status"] == "effective")


def impose_penalty(w: World) -> Write:
    member = make_member(Role.MERCHANT)
    return Write("POST", f"{API}/credit/penalties", w.staff["operator"], {
        "party_id": member.id, "kind": "fine", "days": 30, "amount": 50_000}, common(
        paid=True, state="lifted", starts_at=EARLY, ends_at=EARLY), model=Penalty,
        verify=lambda p: p["paid"] is False)


def add_admission_rule(w: World) -> Write:
    return Write("POST", f"{API}/admission-rules", make_member(Role.OPERATOR), {
        "list": "negative", "name": "Probe", "reason": "Matches nothing",
        "keywords": [f"nothing-{uuid.uuid4().hex}"]}, common(
        rule_key=str(uuid.uuid4()), version=7, retired_at=EARLY), model=AdmissionRule,
        verify=lambda rule: rule["version"] == 1 and rule["retired_at"] is None)


def grant_qualification(w: World) -> Write:
    merchant = make_member(Role.MERCHANT, granted=False)
    return Write("POST", f"{API}/parties/{merchant.id}/qualifications", w.staff["operator"], {
        "max_classification": "sensitive", "evidence_ref": "QUAL-1",
        "valid_until": (clock.now() + timedelta(days=365)).isoformat()}, common(
        party_id=someone_else(), granted_by=someone_else(), granted_at=EARLY),
        model=Qualification, verify=lambda q: q["party_id"] == merchant.id)


def grant_accreditation(w: World) -> Write:
    certifier = make_member(Role.CERTIFIER, granted=False)
    return Write("POST", f"{API}/certifiers/{certifier.id}/accreditations",
                 w.staff["operator"], {
                     "scopes": ["compliance"], "max_classification": "sensitive",
                     "evidence_ref": "CNAS-1",
                     "valid_until": (clock.now() + timedelta(days=365)).isoformat()}, common(
        party_id=someone_else(), granted_by=someone_else(), granted_at=EARLY),
        model=Accreditation, verify=lambda a: a["party_id"] == certifier.id)


def decide_consent(w: World) -> Write:
    case = consent_request(w)
    holder = case.parties[OWNER]
    return Write("POST", f"{API}/consents/{case.ids['consent_id']}/decide", holder,
                 {"decision": "accept", "note": None}, {
                     "status": "declined", "party_id": someone_else(), "decided_at": EARLY,
                     "listing_id": str(uuid.uuid4()), "role": "payee", "terms": {}},
                 model=Consent, status=200,
                 verify=lambda c: (c["status"], c["party_id"]) == ("accepted", holder.id))


def run_settlement(w: World) -> Write:
    return Write("POST", f"{API}/settlement/runs", w.staff["operator"], {}, common(
        status="finished", orders_settled=99, gross_amount=1, platform_fee_amount=1,
        payout_amount=10**9, refunds_reversed=3, started_at=EARLY, finished_at=EARLY),
        model=SettlementRun, idempotent=True,
        verify=lambda run: (run["orders_settled"], run["gross_amount"]) == (0, 0))


def report_usage(w: World) -> Write:
    case = license_case("active", price_model="per_call", unit_price=100)(w)
    path = f"{API}/licenses/{case.ids['license_id']}"
    return Write("POST", f"{path}/usage", case.parties[COUNTERPARTY], {
        "calls": 1, "period_start": "2026-06-01T00:00:00Z", "period_end": "2026-06-02T00:00:00Z"},
        common(license_id=str(uuid.uuid4()), calls_remaining=1000, reported_by=someone_else()),
        model=LicenseUsage, idempotent=True,
        verify=lambda usage: usage["calls_remaining"] == 0)


def revoke_license(w: World) -> Write:
    case = license_case("active")(w)
    path = f"{API}/licenses/{case.ids['license_id']}"
    return Write("POST", f"{path}/revoke", w.staff["regulator"], {
        "reason": "Resold", "fault_party": "none"}, {
        "status": "active", "valid_until": "2099-01-01T00:00:00+00:00", "buyer_id":
        someone_else(), "status_reason": "kept"}, read=reader(w, case.parties[OWNER], path),
        status=200, verify=lambda licence: licence["status"] == "revoked")


WRITES: dict[str, Callable[[World], Write]] = {
    "POST /parties": write_party, "POST /listings": write_listing,
    "PATCH /listings/{id}": edit_listing, "POST /orders": place_order,
    "POST /demands": post_demand, "POST /guide-prices": set_guide_price,
    "POST /listings/{id}/quality-reports": report_quality,
    "POST /orders/{id}/disputes": open_dispute, "POST /disputes/{id}/resolve": resolve_dispute,
    "POST /orders/{id}/payments/confirm": confirm_payment,
    "POST /orders/{id}/deliver": deliver,
    "POST /listings/{id}/artifacts": upload_artifact,
    "PUT /parties/{id}/payout-account": set_payout_account,
    "POST /listings/{id}/certifications": certify,
    "POST /credit/events/{id}/objections": object_to_finding,
    "POST /credit/repairs": apply_for_repair, "POST /credit/events": record_credit_event,
    "POST /credit/penalties": impose_penalty, "POST /admission-rules": add_admission_rule,
    "POST /settlement/runs": run_settlement,
    "POST /parties/{id}/qualifications": grant_qualification,
    "POST /certifiers/{id}/accreditations": grant_accreditation,
    "POST /consents/{id}/decide": decide_consent,
    "POST /licenses/{id}/usage": report_usage, "POST /licenses/{id}/revoke": revoke_license,
}


@pytest.mark.parametrize("endpoint", list(WRITES))
def test_server_owned_fields_are_refused_and_never_stored(world: World,
                                                          endpoint: str) -> None:
    write = WRITES[endpoint](world)
    stored_before = footprint()
    state_before = write.read() if write.read else None
    rows_before = count_rows(write.model)
    for name, value in write.smuggled.items():
        body = (write.body.with_field(name, value) if isinstance(write.body, Multipart)
                else {**write.body, name: value})
        response = world.call(write.actor, write.method, write.path, body, write.idempotent)
        assert response.status_code == 422, (name, response.status_code, response.get_json())
        assert name in response.get_json()["errors"], (name, response.get_json())
    assert footprint() == stored_before, "a refused request stored something"
    assert count_rows(write.model) == rows_before
    if write.read:
        assert write.read() == state_before

    # The same request without them succeeds, and carries the server's values.
    stored = ok(world.call(write.actor, write.method, write.path, write.body,
                           write.idempotent), write.status)
    if write.read:
        stored = write.read()
    for name, value in write.smuggled.items():
        if name in stored:
            assert stored[name] != value, (name, value)
    if write.verify:
        assert write.verify(stored) is not False, stored


def count_rows(model: Any) -> int:
    if model is None:
        return 0
    with db.engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.count()).select_from(model.__table__))


def test_an_issued_key_is_the_servers_never_the_clients(world: World) -> None:
    """POST /parties/{id}/api-keys takes no body: a key the client proposes is ignored."""
    member = make_member(Role.MERCHANT)
    chosen = "dx_" + "chosen" * 8
    issued = ok(world.call(member, "POST", f"{API}/parties/{member.id}/api-keys",
                           {"api_key": chosen, "id": str(uuid.uuid4()), "prefix": "dx_chosen",
                            "revoked_at": None, "party_id": someone_else()}), 201)
    assert issued["api_key"] != chosen
    assert world.client.get(f"{API}/parties/me",
                            headers={"Authorization": f"Bearer {chosen}"}).status_code == 401
    mine = world.client.get(f"{API}/parties/me",
                            headers={"Authorization": f"Bearer {issued['api_key']}"})
    assert ok(mine)["id"] == member.id


def test_an_idempotency_key_replays_only_to_the_party_that_used_it(world: World) -> None:
    """Party B sending A's Idempotency-Key with A's very body gets its own order, not a
    replay of A's (keys are scoped to the calling party)."""
    listing = listed_product(world.client, make_member(Role.MERCHANT), licenses_available=None)
    key = {"Idempotency-Key": f"shared-{uuid.uuid4().hex}"}
    a, b = make_member(Role.BUYER), world.outsiders["buyer"]
    first = world.client.post(f"{API}/orders", json=order_body(listing),
                              headers={**a.headers, **key})
    second = world.client.post(f"{API}/orders", json=order_body(listing),
                               headers={**b.headers, **key})
    assert ok(first, 201)["buyer_id"] == a.id
    assert ok(second, 201)["buyer_id"] == b.id
    assert second.json["id"] != first.json["id"]
    assert "Idempotent-Replayed" not in second.headers


def test_a_version_sent_with_an_edit_guards_it_and_is_never_stored(world: World) -> None:
    merchant = make_member(Role.MERCHANT)
    path = f"{API}/listings/{world.draft(merchant)}"
    stale = world.call(merchant, "PATCH", path, {"title": "Mine", "version": 99})
    assert stale.status_code == 409, stale.get_json()
    seen = ok(world.call(merchant, "GET", path))
    assert (seen["version"], seen["title"]) == (1, listing_body(merchant)["title"])


def test_a_review_flag_is_shown_to_the_merchant_and_overseers_only(world: World) -> None:
    """Object-property level: every party may read a listed product, not its quality flag."""
    merchant = make_member(Role.MERCHANT)
    listing_id = world.listed(merchant)
    flag(listing_id)
    for name, member in [*world.outsiders.items(), (OWNER, merchant)]:
        seen = ok(world.call(member, "GET", f"{API}/listings/{listing_id}"))
        shown = name in {OWNER, EVERY_ROLE, *OVERSEERS}
        assert (seen["review_flag"] is not None) == shown, name


@pytest.mark.parametrize("role", ["operator", "regulator", "certifier"])
def test_privileged_roles_are_not_taken_at_registration(world: World, role: str) -> None:
    """Only an operator grants the operator role; regulators and certifiers are created with
    the CLI (an operator registering one would hold its first key); nobody else, key or not."""
    registrars = [None, world.outsiders["buyer"], world.outsiders["regulator"]]
    if role != "operator":
        registrars.append(world.staff["operator"])
    for registrar in registrars:
        before = count_rows(Party)
        response = world.call(registrar, "POST", f"{API}/parties",
                              dict(PartyBodyFactory(roles=["buyer", role])))
        assert response.status_code == 403, response.get_json()
        assert count_rows(Party) == before
    if role == "operator":
        granted = ok(world.call(world.staff["operator"], "POST", f"{API}/parties",
                                dict(PartyBodyFactory(roles=[role]))), 201)
        assert granted["roles"] == [role]
