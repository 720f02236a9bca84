"""API delivery: holders of an active `api` licence get short-lived tokens, stored hashed; the
merchant's API introspects them (RFC 7662), and a suspended, revoked or lapsed licence stops
them at once."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from app import clock
from app.extensions import db
from app.parties.models import Role
from app.scheduler import run_job
from licenses.models import LicenseToken
from tests.factories import Member, make_member
from tests.licenses.helpers import API, DOWNLOAD, Licensing, agency
from tests.orders.factories import Market
from tests.support import ok, problem

INTROSPECT = f"{API}/oauth/introspect"
REASON = {"reason": "调查中 Under investigation"}
RFC_7662_FIELDS = {"active", "token_type", "scope", "exp", "iat", "sub"}


@pytest.fixture
def trade(market: Market) -> Licensing:
    return Licensing(market)


def token_for(trade: Licensing, license_id: str, member: Member | None = None) -> dict:
    return ok(trade.post(license_id, "tokens", member or trade.market.buyer), 201)


def introspect(trade: Licensing, token: str, merchant: Member | None = None,
               as_json: bool = False) -> dict:
    headers = (merchant or trade.market.merchant).headers
    if as_json:
        return ok(trade.client.post(INTROSPECT, headers=headers, json={"token": token}))
    return ok(trade.client.post(INTROSPECT, headers=headers,
                                data={"token": token, "token_type_hint": "access_token"}))


def test_the_buyer_gets_a_short_lived_token_that_the_merchant_introspects(app, trade):
    order, licence = trade.delivered()
    issued = token_for(trade, licence["id"])
    assert issued["access_token"].startswith("dxt_") and len(issued["access_token"]) > 40
    assert (issued["token_type"], issued["license_id"]) == ("Bearer", licence["id"])
    lifetime = datetime.fromisoformat(issued["expires_at"]) - clock.now()
    ttl = app.config["LICENSE_TOKEN_TTL_SECONDS"]
    assert timedelta(seconds=ttl - 60) < lifetime <= timedelta(seconds=ttl)

    seen = introspect(trade, issued["access_token"])
    assert set(seen) >= RFC_7662_FIELDS | {"license_id", "buyer_id", "calls_remaining"}
    assert seen["active"] is True
    assert (seen["license_id"], seen["buyer_id"], seen["sub"]) == (
        licence["id"], trade.market.buyer.id, trade.market.buyer.id)
    assert seen["listing_id"] == order["listing_id"]
    assert seen["scope"] == " ".join(licence["purposes"])
    assert seen["exp"] == int(datetime.fromisoformat(issued["expires_at"]).timestamp())
    assert seen["calls_remaining"] is None  # not a per-call product
    assert introspect(trade, issued["access_token"], as_json=True) == seen


def test_tokens_are_stored_as_their_sha256_only(trade):
    _, licence = trade.delivered()
    raw = token_for(trade, licence["id"])["access_token"]
    with db.engine.connect() as connection:
        hashes = list(connection.scalars(sa.select(LicenseToken.token_hash)))
        rows = [" ".join(map(str, row)) for row in connection.execute(
            sa.select(LicenseToken.__table__))]
    assert hashes == [hashlib.sha256(raw.encode()).hexdigest()]
    assert not any(raw in row for row in rows)


def test_an_unknown_an_expired_or_another_merchants_token_is_inactive_and_nothing_more(
        app, trade):
    _, licence = trade.delivered()
    token = token_for(trade, licence["id"])["access_token"]
    assert introspect(trade, "dxt_" + "A" * 43) == {"active": False}
    assert introspect(trade, token, make_member(Role.MERCHANT)) == {"active": False}
    clock.advance(timedelta(seconds=app.config["LICENSE_TOKEN_TTL_SECONDS"] + 1))
    assert introspect(trade, token) == {"active": False}
    assert trade.license(licence["id"])["status"] == "active"


def test_only_merchants_introspect_and_a_token_is_required(trade):
    _, licence = trade.delivered()
    token = token_for(trade, licence["id"])["access_token"]
    problem(trade.client.post(INTROSPECT, data={"token": token}), 401)
    for member in (trade.market.buyer, trade.market.operator):
        problem(trade.client.post(INTROSPECT, headers=member.headers, data={"token": token}),
                403)
    refused = problem(trade.client.post(INTROSPECT, headers=trade.market.merchant.headers,
                                        data={}), 422)
    assert "token" in refused["errors"]


def test_revoking_the_licence_stops_its_token_in_the_same_second(trade):
    _, licence = trade.delivered()
    token = token_for(trade, licence["id"])["access_token"]
    assert introspect(trade, token)["active"] is True
    ok(trade.post(licence["id"], "revoke", trade.market.operator,
                  {**REASON, "fault_party": "none"}))
    assert introspect(trade, token) == {"active": False}
    problem(trade.post(licence["id"], "tokens", trade.market.buyer), 403, "license_inactive")


def test_suspending_the_licence_stops_its_tokens_until_it_is_reinstated(trade):
    _, licence = trade.delivered()
    token = token_for(trade, licence["id"])["access_token"]
    ok(trade.post(licence["id"], "suspend", trade.market.regulator, REASON))
    assert introspect(trade, token) == {"active": False}
    problem(trade.post(licence["id"], "tokens", trade.market.buyer), 403, "license_inactive")
    ok(trade.post(licence["id"], "reinstate", trade.market.regulator, REASON))
    assert introspect(trade, token)["active"] is True


def test_a_token_never_outlives_its_licence(app, trade, monkeypatch):
    monkeypatch.setitem(app.config, "LICENSE_TOKEN_TTL_SECONDS", 400 * 86400)
    _, licence = trade.delivered()
    issued = token_for(trade, licence["id"])
    assert issued["expires_at"] == licence["valid_until"]
    clock.advance(timedelta(days=365, seconds=1))
    # Past its end, before the job has expired it: the token is inactive already.
    assert trade.license(licence["id"])["status"] == "active"
    assert introspect(trade, issued["access_token"]) == {"active": False}
    refused = problem(trade.post(licence["id"], "tokens", trade.market.buyer), 403,
                      "license_inactive")
    assert "past its end" in refused["detail"]


def test_a_beneficiary_of_a_joint_purchase_sees_its_licence_and_gets_a_token(trade):
    served = agency()
    order = trade.order(trade.listing(), beneficiaries=[served.id])
    trade.pay(order)
    trade.deliver(order)
    licence = trade.license(order["license_id"], served)
    assert licence["beneficiaries"] == [served.id]
    listed = ok(trade.client.get(f"{API}/licenses", headers=served.headers))
    assert [item["id"] for item in listed] == [licence["id"]]
    token = token_for(trade, licence["id"], served)["access_token"]
    seen = introspect(trade, token)
    assert (seen["active"], seen["sub"], seen["buyer_id"]) == (
        True, served.id, trade.market.buyer.id)


def test_strangers_the_merchant_and_an_inactive_licence_get_no_token(app, trade):
    m = trade.market
    _, licence = trade.delivered(trade.listing(usage_scope={
        "purposes": ["research"], "term_days": 30, "territory": "domestic", "resale": False,
        "derivatives": False}))
    for stranger in (make_member(Role.BUYER), make_member(Role.MERCHANT), agency()):
        problem(trade.post(licence["id"], "tokens", stranger), 404, "license_not_found")
    for seer in (m.merchant, m.operator):
        problem(trade.post(licence["id"], "tokens", seer), 403, "forbidden")
    pending = trade.order(trade.listing())
    problem(trade.post(pending["license_id"], "tokens", m.buyer), 403, "license_inactive")
    _, download = trade.delivered(trade.listing(**DOWNLOAD))
    problem(trade.post(download["id"], "tokens", m.buyer), 409, "delivery_mode_mismatch")

    clock.advance(timedelta(days=31))
    assert run_job(app, "expire_licenses")
    assert trade.license(licence["id"])["status"] == "expired"
    refused = problem(trade.post(licence["id"], "tokens", m.buyer), 403, "license_inactive")
    assert refused["status"] == 403 and "expired" in refused["detail"]
    with db.engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(LicenseToken)) == 0


def test_the_expiry_job_forgets_tokens_past_their_expiry(app, trade):
    _, licence = trade.delivered()
    old = token_for(trade, licence["id"])["access_token"]
    clock.advance(timedelta(seconds=app.config["LICENSE_TOKEN_TTL_SECONDS"] + 1))
    fresh = token_for(trade, licence["id"])["access_token"]
    assert run_job(app, "expire_licenses")
    with db.engine.connect() as connection:
        hashes = set(connection.scalars(sa.select(LicenseToken.token_hash)))
    assert hashes == {hashlib.sha256(fresh.encode()).hexdigest()}
    assert introspect(trade, old) == {"active": False}
    assert introspect(trade, fresh)["active"] is True


def test_issuing_a_token_is_audited_without_the_token(trade):
    listing = trade.listing()
    _, licence = trade.delivered(listing)
    issued = token_for(trade, licence["id"])
    trace = ok(trade.client.get(f"{API}/listings/{listing['id']}/trace",
                                headers=trade.market.merchant.headers))
    [entry] = [entry for entry in trace if entry["action"] == "license.token_issued"]
    assert (entry["subject_id"], entry["actor_id"]) == (licence["id"], trade.market.buyer.id)
    assert issued["access_token"] not in str(entry["details"])
    assert entry["details"]["expires_at"] == issued["expires_at"]
