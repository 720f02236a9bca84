"""Qualified merchants, accredited certifiers and revoked certifications, through the HTTP API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from app import clock
from app.audit import AuditEntry
from app.extensions import db
from app.parties.models import Role
from listings.models import Certification
from listings.rights_models import Accreditation, Qualification
from tests.factories import Member, make_member
from tests.listings.factories import listing_body
from tests.orders.factories import Market, listed_product
from tests.support import ok, problem

API = "/api/v1"
LISTINGS = f"{API}/listings"
UNKNOWN = "7a1c9f04-6a0e-4c1b-9d2e-5f3b8a6c2d10"
# A sensitive product as a qualified merchant lists it (personal information anonymized).
SENSITIVE = {"classification": "sensitive", "contains_personal_info": True, "anonymized": True,
             "delivery_mode": "sandbox"}


def in_days(days: float) -> str:
    return (clock.now() + timedelta(days=days)).isoformat()


def qualification(**overrides: Any) -> dict[str, Any]:
    return {"max_classification": "sensitive", "valid_until": in_days(365),
            "evidence_ref": "SHDEX-QUAL-2026-0193", **overrides}


def accreditation(**overrides: Any) -> dict[str, Any]:
    return {"scopes": ["compliance"], "max_classification": "sensitive",
            "valid_until": in_days(365), "evidence_ref": "CNAS-C-2026-0412", **overrides}


def certification(**overrides: Any) -> dict[str, Any]:
    return {"rating": "A", "scopes": ["compliance"], "valid_until": in_days(180),
            "report_ref": "SZDX-CERT-2026-0042", **overrides}


def qualify(m: Market, merchant: Member, **overrides: Any) -> Any:
    return m.client.post(f"{API}/parties/{merchant.id}/qualifications",
                         json=qualification(**overrides), headers=m.operator.headers)


def accredit(m: Market, certifier: Member, **overrides: Any) -> Any:
    return m.client.post(f"{API}/certifiers/{certifier.id}/accreditations",
                         json=accreditation(**overrides), headers=m.operator.headers)


def draft(m: Market, merchant: Member, **overrides: Any) -> str:
    return ok(m.client.post(LISTINGS, json=listing_body(merchant, **overrides),
                            headers=merchant.headers), 201)["id"]


def submit(m: Market, merchant: Member, listing_id: str) -> Any:
    return m.client.post(f"{LISTINGS}/{listing_id}/submit", headers=merchant.headers)


def certify(client: FlaskClient, certifier: Member, listing_id: str, **overrides: Any) -> Any:
    return client.post(f"{LISTINGS}/{listing_id}/certifications",
                       json=certification(**overrides), headers=certifier.headers)


@pytest.fixture
def m(market: Market) -> Market:
    return market


def count(model: Any) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


# --- qualifications ------------------------------------------------------------------------

def test_an_unqualified_merchant_cannot_submit_sensitive_or_important_data(m: Market) -> None:
    newcomer = make_member(Role.MERCHANT, granted=False)
    sensitive = draft(m, newcomer, **SENSITIVE)
    important = draft(m, newcomer, classification="important", delivery_mode="sandbox")

    for listing_id, grade in ((sensitive, "sensitive"), (important, "important")):
        refused = problem(submit(m, newcomer, listing_id), 422, "not_qualified")
        assert grade in refused["detail"]
        assert "classification" in refused["errors"]
        seen = ok(m.client.get(f"{LISTINGS}/{listing_id}", headers=newcomer.headers))
        assert seen["status"] == "draft"
    # Open and general data need no qualification.
    assert ok(submit(m, newcomer, draft(m, newcomer)))["status"] == "pending_review"


def test_a_qualification_covers_its_classification_and_those_below(m: Market) -> None:
    merchant = make_member(Role.MERCHANT, granted=False)
    granted = ok(qualify(m, merchant), 201)
    assert (granted["party_id"], granted["max_classification"]) == (merchant.id, "sensitive")
    assert granted["granted_by"] == m.operator.id

    assert ok(submit(m, merchant, draft(m, merchant, **SENSITIVE)))["status"] == \
        "pending_review"
    important = draft(m, merchant, classification="important", delivery_mode="sandbox")
    problem(submit(m, merchant, important), 422, "not_qualified")

    ok(qualify(m, merchant, max_classification="important"), 201)
    assert ok(submit(m, merchant, important))["status"] == "pending_review"


def test_an_expired_qualification_no_longer_covers(m: Market) -> None:
    merchant = make_member(Role.MERCHANT, granted=False)
    ok(qualify(m, merchant, valid_until=in_days(1)), 201)
    listing_id = draft(m, merchant, **SENSITIVE)

    clock.advance(timedelta(days=2))

    problem(submit(m, merchant, listing_id), 422, "not_qualified")


def test_only_an_operator_grants_a_qualification_to_a_merchant(m: Market) -> None:
    merchant = make_member(Role.MERCHANT, granted=False)
    path = f"{API}/parties/{merchant.id}/qualifications"
    before = count(Qualification)
    for someone in (merchant, m.buyer, m.regulator, make_member(Role.CERTIFIER)):
        problem(m.client.post(path, json=qualification(), headers=someone.headers), 403)
    problem(m.client.post(path, json=qualification()), 401)
    problem(m.client.post(f"{API}/parties/{UNKNOWN}/qualifications", json=qualification(),
                          headers=m.operator.headers), 404, "party_not_found")
    problem(qualify(m, m.buyer), 422, "role_required")
    problem(qualify(m, merchant, valid_until=in_days(-1)), 422, "validation_error")
    problem(qualify(m, merchant, max_classification="core"), 422, "validation_error")
    problem(qualify(m, merchant, valid_until="2030-01-01T00:00:00"), 422)
    assert count(Qualification) == before


def test_a_partys_qualifications_are_its_own_and_the_overseers_to_read(m: Market) -> None:
    merchant = make_member(Role.MERCHANT, granted=False)
    granted = ok(qualify(m, merchant), 201)
    path = f"{API}/parties/{merchant.id}/qualifications"

    for reader in (merchant, m.operator, m.regulator):
        assert [q["id"] for q in ok(m.client.get(path, headers=reader.headers))] == \
            [granted["id"]]
    for outsider in (m.buyer, m.merchant):
        problem(m.client.get(path, headers=outsider.headers), 403)


def test_granting_a_qualification_is_audited(m: Market) -> None:
    merchant = make_member(Role.MERCHANT, granted=False)
    granted = ok(qualify(m, merchant), 201)

    [entry] = db.session.scalars(sa.select(AuditEntry).where(
        AuditEntry.action == "party.qualified", AuditEntry.subject_id == granted["id"]))
    assert entry.actor_id is not None and str(entry.actor_id) == m.operator.id
    assert entry.details["party_id"] == merchant.id


# --- accreditations --------------------------------------------------------------------------

@pytest.fixture
def pending_sensitive(m: Market) -> str:
    listing_id = draft(m, m.merchant, **SENSITIVE)
    assert ok(submit(m, m.merchant, listing_id))["status"] == "pending_review"
    return listing_id


def test_an_unaccredited_certifier_cannot_certify(m: Market, pending_sensitive: str) -> None:
    certifier = make_member(Role.CERTIFIER, granted=False)

    refused = problem(certify(m.client, certifier, pending_sensitive), 403, "not_accredited")

    assert refused["uncovered_scopes"] == ["compliance"]
    assert count(Certification) == 0


def test_an_accreditation_must_cover_every_scope_and_the_classification(
        m: Market, pending_sensitive: str) -> None:
    certifier = make_member(Role.CERTIFIER, granted=False)
    ok(accredit(m, certifier, max_classification="general"), 201)
    problem(certify(m.client, certifier, pending_sensitive), 403, "not_accredited")

    ok(accredit(m, certifier, scopes=["compliance"], max_classification="important"), 201)
    both = problem(certify(m.client, certifier, pending_sensitive,
                           scopes=["compliance", "quality"]), 403, "not_accredited")
    assert both["uncovered_scopes"] == ["quality"]
    issued = ok(certify(m.client, certifier, pending_sensitive), 201)
    assert issued["certifier_id"] == certifier.id


def test_an_expired_accreditation_no_longer_covers(m: Market, pending_sensitive: str) -> None:
    certifier = make_member(Role.CERTIFIER, granted=False)
    ok(accredit(m, certifier, valid_until=in_days(1)), 201)

    clock.advance(timedelta(days=2))

    problem(certify(m.client, certifier, pending_sensitive), 403, "not_accredited")


def test_only_an_operator_accredits_a_certifier_and_anyone_reads_it(m: Market) -> None:
    certifier = make_member(Role.CERTIFIER, granted=False)
    path = f"{API}/certifiers/{certifier.id}/accreditations"
    for someone in (certifier, m.merchant, m.regulator, m.buyer):
        problem(m.client.post(path, json=accreditation(), headers=someone.headers), 403)
    problem(accredit(m, m.merchant), 422, "role_required")
    problem(accredit(m, certifier, scopes=[]), 422)
    problem(accredit(m, certifier, scopes=["beauty"]), 422)
    assert count(Accreditation) == 0

    granted = ok(accredit(m, certifier, scopes=["security", "compliance"]), 201)

    assert granted["scopes"] == ["compliance", "security"]
    for reader in (m.buyer, m.merchant, certifier):
        assert [a["id"] for a in ok(m.client.get(path, headers=reader.headers))] == \
            [granted["id"]]


# --- revocation --------------------------------------------------------------------------------

def listed_sensitive(m: Market, certifier: Member) -> tuple[str, str]:
    """A sensitive product certified by the certifier and approved: (listing, certification)."""
    listing_id = draft(m, m.merchant, **SENSITIVE)
    ok(submit(m, m.merchant, listing_id))
    certified = ok(certify(m.client, certifier, listing_id), 201)
    approved = ok(m.client.post(f"{LISTINGS}/{listing_id}/review", headers=m.operator.headers,
                                json={"decision": "approve", "reason": "Certified"}))
    assert approved["status"] == "listed"
    return listing_id, certified["id"]


def revoke(m: Market, actor: Member, certification_id: str,
           reason: str = "Sampling found re-identifiable records") -> Any:
    return m.client.post(f"{API}/certifications/{certification_id}/revoke",
                         json={"reason": reason}, headers=actor.headers)


def test_a_revoked_certification_suspends_the_listing_that_relied_on_it(m: Market) -> None:
    certifier = make_member(Role.CERTIFIER)
    listing_id, certification_id = listed_sensitive(m, certifier)

    revoked = ok(revoke(m, certifier, certification_id))

    assert revoked["revoked_at"] is not None
    assert revoked["revocation_reason"] == "Sampling found re-identifiable records"
    listing = ok(m.client.get(f"{LISTINGS}/{listing_id}", headers=m.merchant.headers))
    assert listing["status"] == "suspended"
    assert certification_id in listing["status_reason"]
    assert "re-identifiable" in listing["status_reason"]
    assert listing["certifications"] == []
    trace = ok(m.client.get(f"{LISTINGS}/{listing_id}/trace", headers=m.operator.headers))
    actions = [(entry["action"], entry["actor_id"]) for entry in trace]
    assert actions[-2:] == [("listing.certification_revoked", certifier.id),
                            ("listing.suspended", certifier.id)]
    # Off the market: the buyer cannot see it, and relisting wants a valid certification.
    problem(m.client.get(f"{LISTINGS}/{listing_id}", headers=m.buyer.headers), 404)
    problem(m.client.post(f"{LISTINGS}/{listing_id}/relist", json={"reason": "Back"},
                          headers=m.operator.headers), 422, "certification_required")
    problem(revoke(m, certifier, certification_id), 409, "invalid_transition")


def test_a_listing_with_another_valid_certification_stays_listed(m: Market) -> None:
    certifier, other = make_member(Role.CERTIFIER), make_member(Role.CERTIFIER)
    listing_id, certification_id = listed_sensitive(m, certifier)
    ok(certify(m.client, other, listing_id, rating="AA"), 201)

    ok(revoke(m, m.operator, certification_id))

    listing = ok(m.client.get(f"{LISTINGS}/{listing_id}", headers=m.buyer.headers))
    assert listing["status"] == "listed"
    assert [c["certifier_id"] for c in listing["certifications"]] == [other.id]


def test_a_general_listing_did_not_rely_on_its_certification(m: Market) -> None:
    certifier = make_member(Role.CERTIFIER)
    listing = listed_product(m.client, m.merchant)
    certified = ok(certify(m.client, certifier, listing["id"], rating="AAA"), 201)

    ok(revoke(m, certifier, certified["id"]))

    assert ok(m.client.get(f"{LISTINGS}/{listing['id']}",
                           headers=m.buyer.headers))["status"] == "listed"


def test_only_the_issuing_certifier_or_an_operator_revokes(m: Market) -> None:
    certifier = make_member(Role.CERTIFIER)
    listing_id, certification_id = listed_sensitive(m, certifier)

    problem(revoke(m, make_member(Role.CERTIFIER), certification_id), 404,
            "certification_not_found")
    for someone in (m.merchant, m.buyer, m.regulator):
        problem(revoke(m, someone, certification_id), 403)
    problem(m.client.post(f"{API}/certifications/{certification_id}/revoke",
                          json={"reason": "x"}), 401)
    problem(revoke(m, certifier, certification_id, reason=""), 422)
    assert ok(m.client.get(f"{LISTINGS}/{listing_id}",
                           headers=m.buyer.headers))["status"] == "listed"

    ok(revoke(m, m.operator, certification_id))
