"""Credit events through the API: scores and levels, blacklisting and its publicity periods,
penalties and their enforcement, blacklist queries, and recomputing scores from the ledger
(the ledger's verification: `test_ledger.py`)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import clock
from app.audit import AuditEntry
from app.db import unit_of_work
from app.extensions import db
from app.log.keys import log_verifier
from app.parties import services as party_services
from app.parties.models import SYSTEM, PartyKind, Role
from app.scheduler import run_job
from credit import ledger, recompute, services
from credit.catalog import CATALOG, Severity
from credit.errors import PartyRestricted
from credit.models import BlacklistEntry, CreditEntry, CreditProfile
from credit.scoring import Level, ScoredEvent, decayed, level, score
from tests.conftest import empty_tables
from tests.factories import Member, PartyBodyFactory, make_member
from tests.support import seal_log

EVENTS = "/api/v1/credit/events"
BLACKLIST = "/api/v1/credit/blacklist"
PENALTIES = "/api/v1/credit/penalties"

PUBLIC_FIELDS = {"party_id", "name", "credit_code", "reason", "listed_at", "publicity_until",
                 "disputed"}
REGULATOR_ONLY_FIELDS = {"blacklist_id", "event_id", "party_kind", "publicity_min_until"}
MIN_PUBLICITY = timedelta(days=91)
SERIOUS_MIN_PUBLICITY = timedelta(days=365)
MAX_PUBLICITY = timedelta(days=3 * 365)
YEAR_AND_A_DAY = timedelta(days=366)


# --- helpers ---------------------------------------------------------------------------------

def _file_url(party_id: str | uuid.UUID) -> str:
    return f"/api/v1/credit/parties/{party_id}"


def _record(client: FlaskClient, recorder: Member, party_id: str, kind: str, severity: str,
            description: str = "Found by the exchange", **extra: Any) -> dict[str, Any]:
    response = client.post(EVENTS, headers=recorder.headers, json={
        "party_id": party_id, "kind": kind, "severity": severity,
        "description": description, "evidence_ref": "case-file-1", **extra})
    assert response.status_code == 201, response.json
    return response.json


def _file(client: FlaskClient, viewer: Member, party_id: str) -> dict[str, Any]:
    response = client.get(_file_url(party_id), headers=viewer.headers)
    assert response.status_code == 200, response.json
    return response.json


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _named_member(name: str, *roles: Role) -> Member:
    """A party with a chosen name (blacklist searches need one)."""
    body = PartyBodyFactory()
    with unit_of_work(db.session()) as session:
        party, issued = party_services.register_party(
            session, name=name, credit_code=body["credit_code"], kind=PartyKind.ENTERPRISE,
            roles=list(roles or (Role.MERCHANT,)), actor=SYSTEM)
    return Member(party, issued.raw)


def _credit_entries() -> list[CreditEntry]:
    with unit_of_work() as session:
        return list(session.scalars(sa.select(CreditEntry).order_by(CreditEntry.seq)))


def _blacklistings(party_id: str) -> list[BlacklistEntry]:
    with unit_of_work() as session:
        return list(session.scalars(sa.select(BlacklistEntry).where(
            BlacklistEntry.party_id == uuid.UUID(party_id))))


# --- the scoring formula, as pure functions --------------------------------------------------

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("age", "kept"), [
    (timedelta(0), -80),
    (timedelta(days=364, hours=23), -80),
    (timedelta(days=365), -40),
    (timedelta(days=729), -40),
    (timedelta(days=730), -20),
    (timedelta(days=1094), -20),
    (timedelta(days=1095), 0),
    (timedelta(days=5000), 0),
])
def test_negative_points_keep_all_then_half_then_a_quarter_then_nothing_by_year_of_age(
        age, kept):
    assert decayed(-80, T0, T0 + age) == kept


def test_decayed_points_are_rounded_toward_zero_and_an_event_not_yet_old_keeps_them_all():
    assert decayed(-10, T0, T0 + timedelta(days=400)) == -5
    assert decayed(-10, T0, T0 + timedelta(days=800)) == -2  # -2.5 toward zero
    assert decayed(-30, T0, T0 + timedelta(days=800)) == -7  # -7.5 toward zero
    assert decayed(-30, T0, T0 - timedelta(days=10)) == -30


def test_a_party_without_events_scores_the_base_of_800():
    assert score([], T0) == 800
    assert level(800) is Level.A


def test_positive_points_of_the_last_year_count_up_to_the_cap_of_100():
    events = [ScoredEvent(20, T0 + timedelta(days=n)) for n in range(7)]  # 140 points
    assert score(events, T0 + timedelta(days=10)) == 900
    assert score(events[:3], T0 + timedelta(days=10)) == 860
    # A year after the first one it no longer counts; the other six still reach the cap.
    assert score(events, T0 + timedelta(days=365)) == 900
    assert score(events, T0 + timedelta(days=370)) == 820  # only the one of day 6 is left


def test_the_positive_cap_limits_incentives_not_the_negative_points_beside_them():
    events = [ScoredEvent(60, T0), ScoredEvent(60, T0), ScoredEvent(-200, T0)]
    assert score(events, T0) == 700


def test_the_score_is_clamped_at_zero_and_ignores_events_after_the_moment_asked():
    five_severe = [ScoredEvent(-200, T0)] * 5
    assert score(five_severe, T0) == 0
    later = [ScoredEvent(-80, T0 + timedelta(days=1))]
    assert score(later, T0) == 800
    assert score(later, T0 + timedelta(days=1)) == 720


@pytest.mark.parametrize(("value", "expected"), [
    (1000, Level.A), (750, Level.A), (749, Level.B), (650, Level.B), (649, Level.C),
    (500, Level.C), (499, Level.D), (0, Level.D),
])
def test_levels_start_at_750_650_and_500(value, expected):
    assert level(value) is expected


# --- each severity's effect through the API --------------------------------------------------

@pytest.mark.parametrize(("severity", "points", "expected_score", "expected_level"), [
    ("minor", -10, 790, "A"),
    ("general", -30, 770, "A"),
    ("serious", -80, 720, "B"),
    ("severe", -200, 600, "C"),
])
def test_a_finding_takes_its_severitys_points_off_a_fresh_party_at_800(
        client, regulator, merchant, severity, points, expected_score, expected_level):
    fresh = _file(client, merchant, merchant.id)
    assert (fresh["score"], fresh["level"], fresh["blacklisted"]) == (800, "A", False)
    assert fresh["events"] == []

    event = _record(client, regulator, merchant.id, "lost_dispute", severity)
    assert (event["party_id"], event["kind"], event["severity"]) == (
        merchant.id, "lost_dispute", severity)
    assert event["points"] == points
    assert event["status"] == "effective" and event["disputed"] is False

    file = _file(client, merchant, merchant.id)
    assert (file["score"], file["level"]) == (expected_score, expected_level)
    assert file["blacklisted"] is (severity == "severe")
    assert [e["id"] for e in file["events"]] == [event["id"]]


def test_findings_add_up_and_move_a_party_down_the_levels(client, operator, merchant):
    seen = []
    for severity in ("general", "general", "serious", "serious", "general"):
        _record(client, operator, merchant.id, "late_delivery", severity)
        file = _file(client, operator, merchant.id)
        seen.append((file["score"], file["level"]))
    assert seen == [(770, "A"), (740, "B"), (660, "B"), (580, "C"), (550, "C")]


def test_positive_events_raise_the_score_only_up_to_the_incentive_cap(client, operator, merchant):
    seen = []
    for kind in ("on_time_trade", "certification_obtained", "clean_year", "clean_year",
                 "clean_year", "clean_year", "clean_year"):
        event = _record(client, operator, merchant.id, kind, "positive")
        assert event["points"] == CATALOG[kind].points
        seen.append(_file(client, merchant, merchant.id)["score"])
    assert seen == [802, 812, 832, 852, 872, 892, 900]
    # The cap bounds the incentives, not the whole score: a finding still costs its points.
    _record(client, operator, merchant.id, "lost_dispute", "general")
    assert _file(client, merchant, merchant.id)["score"] == 870


def test_positive_events_older_than_a_year_stop_counting(client, operator, merchant):
    _record(client, operator, merchant.id, "certification_obtained", "positive")
    assert _file(client, merchant, merchant.id)["score"] == 810
    clock.advance(YEAR_AND_A_DAY)
    _record(client, operator, merchant.id, "on_time_trade", "positive")
    assert _file(client, merchant, merchant.id)["score"] == 802


def test_old_findings_decay_over_three_years_and_the_file_shows_it_after_the_next_event(
        client, regulator, merchant):
    _record(client, regulator, merchant.id, "unfair_competition", "serious")
    file = _file(client, merchant, merchant.id)
    assert (file["score"], file["level"]) == (720, "B")
    assert [p["kind"] for p in file["penalties"]] == ["warning"]

    # Each on_time_trade (+2) refreshes the cached score; the one before is then a year old.
    for expected in (800 - 40 + 2, 800 - 20 + 2, 800 - 0 + 2):
        before = _file(client, merchant, merchant.id)
        clock.advance(YEAR_AND_A_DAY)
        unchanged = _file(client, merchant, merchant.id)
        assert (unchanged["score"], unchanged["computed_at"]) == (
            before["score"], before["computed_at"])
        _record(client, regulator, merchant.id, "on_time_trade", "positive")
        refreshed = _file(client, merchant, merchant.id)
        assert refreshed["score"] == expected
        assert refreshed["level"] == level(expected).value
        assert _at(refreshed["computed_at"]) > _at(before["computed_at"])
    # The finding stays in the history; only its weight is gone (and its warning has ended).
    assert refreshed["events"][0]["kind"] == "unfair_competition"
    assert refreshed["penalties"] == []


# --- who may record what ---------------------------------------------------------------------

def test_operators_and_regulators_record_events(client, operator, regulator, merchant):
    by_operator = _record(client, operator, merchant.id, "late_delivery", "minor")
    by_regulator = _record(client, regulator, merchant.id, "late_delivery", "minor")
    file = _file(client, regulator, merchant.id)
    assert [e["id"] for e in file["events"]] == [by_operator["id"], by_regulator["id"]]
    assert file["score"] == 780


def test_merchants_and_buyers_may_not_record_events_and_anonymous_callers_are_unauthorized(
        client, regulator, merchant):
    buyer = make_member(Role.BUYER)
    body = {"party_id": merchant.id, "kind": "late_delivery", "severity": "minor",
            "description": "Self-serving report"}
    for member in (merchant, buyer):
        refused = client.post(EVENTS, headers=member.headers, json=body)
        assert refused.status_code == 403
        assert refused.json["code"] == "forbidden"
    anonymous = client.post(EVENTS, json=body)
    assert anonymous.status_code == 401
    assert anonymous.json["code"] == "unauthorized"
    assert _credit_entries() == []


def test_an_unknown_kind_is_a_validation_error(client, regulator, merchant):
    response = client.post(EVENTS, headers=regulator.headers, json={
        "party_id": merchant.id, "kind": "littering", "severity": "minor",
        "description": "Not in the catalog"})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "validation_error"
    assert "kind" in response.json["errors"]


@pytest.mark.parametrize(("kind", "severity"), [
    ("on_time_trade", "minor"),
    ("clean_year", "severe"),
    ("late_delivery", "positive"),
    ("fraud", "positive"),
])
def test_a_severity_that_does_not_fit_the_kind_is_a_validation_error(
        client, regulator, merchant, kind, severity):
    response = client.post(EVENTS, headers=regulator.headers, json={
        "party_id": merchant.id, "kind": kind, "severity": severity,
        "description": "Mismatched severity"})
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "validation_error"
    assert "severity" in response.json["errors"]
    assert _file(client, regulator, merchant.id)["events"] == []


def test_an_event_about_an_unknown_party_is_not_found(client, regulator):
    response = client.post(EVENTS, headers=regulator.headers, json={
        "party_id": str(uuid.uuid4()), "kind": "late_delivery", "severity": "minor",
        "description": "Nobody"})
    assert response.status_code == 404
    assert response.json["code"] == "not_found"
    assert _credit_entries() == []


# --- automatic blacklisting ------------------------------------------------------------------

def _assert_publicity(blacklisting: dict[str, Any], decided_at: str,
                      minimum: timedelta) -> None:
    listed_at = _at(blacklisting["listed_at"])
    assert listed_at == _at(decided_at)
    assert _at(blacklisting["publicity_min_until"]) == listed_at + minimum
    assert _at(blacklisting["publicity_until"]) == listed_at + MAX_PUBLICITY


def test_a_severe_finding_blacklists_for_at_least_three_months_and_at_most_three_years(
        client, regulator, merchant):
    event = _record(client, regulator, merchant.id, "unfair_competition", "severe")
    file = _file(client, merchant, merchant.id)
    assert file["blacklisted"] is True
    _assert_publicity(file["blacklisting"], event["recorded_at"], MIN_PUBLICITY)
    assert "severe" in file["blacklisting"]["reason"]

    [row] = client.get(BLACKLIST, headers=regulator.headers).json
    assert (row["party_id"], row["event_id"]) == (merchant.id, event["id"])
    _assert_publicity(row, event["recorded_at"], MIN_PUBLICITY)


def test_a_severe_finding_brings_trade_restriction_and_listing_ban_for_the_whole_publicity(
        client, regulator, merchant):
    event = _record(client, regulator, merchant.id, "non_delivery", "severe")
    file = _file(client, merchant, merchant.id)
    penalties = {p["kind"]: p for p in file["penalties"]}
    assert set(penalties) == {"trade_restriction", "listing_ban"}
    for penalty in penalties.values():
        assert penalty["event_id"] == event["id"]
        assert penalty["state"] == "active"
        assert _at(penalty["starts_at"]) == _at(event["recorded_at"])
        assert penalty["ends_at"] == file["blacklisting"]["publicity_until"]


@pytest.mark.parametrize("kind", ["data_tampering", "resale_beyond_scope", "fraud"])
def test_a_serious_category_kind_is_publicized_for_at_least_a_year(
        client, regulator, merchant, kind):
    event = _record(client, regulator, merchant.id, kind, "severe")
    file = _file(client, regulator, merchant.id)
    assert file["blacklisted"] is True
    _assert_publicity(file["blacklisting"], event["recorded_at"], SERIOUS_MIN_PUBLICITY)


def test_dropping_to_level_d_through_several_findings_blacklists(client, regulator, merchant):
    for _ in range(3):
        _record(client, regulator, merchant.id, "unfair_competition", "serious")
    for _ in range(6):
        _record(client, regulator, merchant.id, "late_delivery", "minor")
    file = _file(client, regulator, merchant.id)
    assert (file["score"], file["level"], file["blacklisted"]) == (500, "C", False)
    assert client.get(BLACKLIST).json == []

    last = _record(client, regulator, merchant.id, "late_delivery", "minor")
    file = _file(client, regulator, merchant.id)
    assert (file["score"], file["level"], file["blacklisted"]) == (490, "D", True)
    assert file["blacklisting"]["reason"].startswith("Credit level D")
    # A minor finding carries no penalty of its own: the plain three-month minimum applies.
    _assert_publicity(file["blacklisting"], last["recorded_at"], MIN_PUBLICITY)
    [row] = client.get(BLACKLIST, headers=regulator.headers).json
    assert row["event_id"] == last["id"]


def test_the_longest_penalty_of_the_decision_sets_the_minimum_publicity(
        client, regulator, merchant):
    for _ in range(3):
        _record(client, regulator, merchant.id, "unfair_competition", "serious")
    # The fourth serious finding drops the party to D; it carries a one-year warning, which
    # outlasts the three-month minimum of a kind outside the serious categories.
    decision = _record(client, regulator, merchant.id, "unfair_competition", "serious")
    file = _file(client, regulator, merchant.id)
    assert (file["level"], file["blacklisted"]) == ("D", True)
    _assert_publicity(file["blacklisting"], decision["recorded_at"], timedelta(days=365))
    penalties = {p["kind"]: p for p in file["penalties"] if p["event_id"] == decision["id"]}
    assert set(penalties) == {"warning", "trade_restriction", "listing_ban"}
    assert penalties["warning"]["ends_at"] == file["blacklisting"]["publicity_min_until"]
    # The listing brings the blacklist's own penalties for its whole publicity.
    for kind in ("trade_restriction", "listing_ban"):
        assert penalties[kind]["ends_at"] == file["blacklisting"]["publicity_until"]


def test_further_findings_at_level_d_do_not_list_a_blacklisted_party_again(
        client, regulator, merchant):
    for _ in range(4):
        _record(client, regulator, merchant.id, "unfair_competition", "serious")
    for _ in range(2):
        _record(client, regulator, merchant.id, "late_delivery", "general")
    file = _file(client, regulator, merchant.id)
    assert (file["score"], file["level"], file["blacklisted"]) == (420, "D", True)
    assert len(_blacklistings(merchant.id)) == 1
    assert [row["party_id"] for row in client.get(BLACKLIST).json] == [merchant.id]


def test_a_severe_finding_about_a_listed_party_is_publicized_for_its_own_period(
        app, client, regulator, merchant):
    _record(client, regulator, merchant.id, "unfair_competition", "severe")
    clock.advance(timedelta(days=2 * 365 + 300))  # 65 days before the first listing ends
    fraud = _record(client, regulator, merchant.id, "fraud", "severe")
    rows = client.get(BLACKLIST, headers=regulator.headers).json
    # One row per party: the decision publicised longest.
    assert [(row["party_id"], row["event_id"]) for row in rows] == [(merchant.id, fraud["id"])]
    _assert_publicity(rows[0], fraud["recorded_at"], SERIOUS_MIN_PUBLICITY)
    file = _file(client, regulator, merchant.id)
    assert file["blacklisting"]["listed_at"] == rows[0]["listed_at"]  # the longest-lasting

    # The first listing's three years end; the fraud's year-long minimum has not.
    clock.advance(timedelta(days=66))
    assert run_job(app, "end_expired_publicity") is True
    rows = client.get(BLACKLIST, headers=regulator.headers).json
    assert [row["event_id"] for row in rows] == [fraud["id"]]
    file = _file(client, regulator, merchant.id)
    assert file["blacklisted"] is True
    assert {p["kind"] for p in file["penalties"]} == {"trade_restriction", "listing_ban"}
    assert {p["event_id"] for p in file["penalties"]} == {fraud["id"]}


# --- publicity ends by itself ----------------------------------------------------------------

def _publicity_ended_count() -> int:
    with unit_of_work() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "credit.publicity_ended"))


def test_publicity_ends_by_itself_at_the_maximum_and_the_job_is_idempotent(
        app, client, regulator, merchant):
    early = _record(client, regulator, merchant.id, "unfair_competition", "severe")
    clock.advance(timedelta(days=2 * 365))
    later = make_member(Role.MERCHANT)
    _record(client, regulator, later.id, "unfair_competition", "severe")
    listed = {row["party_id"] for row in client.get(BLACKLIST).json}
    assert listed == {merchant.id, later.id}

    clock.advance(timedelta(days=365, hours=1))  # past the early one's three years only
    assert _at(early["recorded_at"]) + MAX_PUBLICITY < clock.now()
    assert run_job(app, "end_expired_publicity") is True

    [ended] = _blacklistings(merchant.id)
    ended_at = ended.ended_at
    assert ended.end_reason == "expired"
    assert ended_at is not None and ended_at <= clock.now()
    assert [row["party_id"] for row in client.get(BLACKLIST).json] == [later.id]
    file = _file(client, merchant, merchant.id)
    assert file["blacklisted"] is False and file["blacklisting"] is None
    assert file["penalties"] == []  # the publicity-long restrictions ended with it
    assert _file(client, later, later.id)["blacklisted"] is True
    [still_listed] = _blacklistings(later.id)
    assert still_listed.ended_at is None
    assert _publicity_ended_count() == 1

    clock.advance(timedelta(days=1))
    assert run_job(app, "end_expired_publicity") is True
    [again] = _blacklistings(merchant.id)
    assert (again.ended_at, again.end_reason) == (ended_at, "expired")
    assert _blacklistings(later.id)[0].ended_at is None
    assert _publicity_ended_count() == 1


# --- penalties -------------------------------------------------------------------------------

def test_a_fine_is_imposed_with_an_amount_and_marked_paid(client, operator, regulator, merchant):
    imposed = client.post(PENALTIES, headers=regulator.headers, json={
        "party_id": merchant.id, "kind": "fine", "days": 30, "amount": 500_000})
    assert imposed.status_code == 201, imposed.json
    fine = imposed.json
    assert (fine["kind"], fine["amount"], fine["paid"], fine["state"]) == (
        "fine", 500_000, False, "active")
    assert _at(fine["ends_at"]) - _at(fine["starts_at"]) == timedelta(days=30)
    [listed] = _file(client, merchant, merchant.id)["penalties"]
    assert (listed["id"], listed["paid"]) == (fine["id"], False)

    paid = client.post(f"{PENALTIES}/{fine['id']}/payment", headers=operator.headers)
    assert paid.status_code == 200, paid.json
    assert (paid.json["id"], paid.json["paid"]) == (fine["id"], True)
    [listed] = _file(client, merchant, merchant.id)["penalties"]
    assert listed["paid"] is True
    again = client.post(f"{PENALTIES}/{fine['id']}/payment", headers=operator.headers)
    assert (again.status_code, again.json["paid"]) == (200, True)


@pytest.mark.parametrize("kind", ["fine", "deposit"])
def test_a_fine_or_deposit_without_an_amount_is_a_validation_error(
        client, regulator, merchant, kind):
    response = client.post(PENALTIES, headers=regulator.headers, json={
        "party_id": merchant.id, "kind": kind, "days": 30})
    assert response.status_code == 422, response.json
    assert response.json["code"] == "validation_error"
    assert "amount" in response.json["errors"]
    assert _file(client, merchant, merchant.id)["penalties"] == []


def test_only_fines_and_deposits_can_be_paid(client, regulator, merchant):
    warning = client.post(PENALTIES, headers=regulator.headers, json={
        "party_id": merchant.id, "kind": "warning", "days": 30})
    assert warning.status_code == 201
    paid = client.post(f"{PENALTIES}/{warning.json['id']}/payment", headers=regulator.headers)
    assert paid.status_code == 404
    unknown = client.post(f"{PENALTIES}/{uuid.uuid4()}/payment", headers=regulator.headers)
    assert unknown.status_code == 404


def test_merchants_may_not_impose_or_pay_off_penalties(client, regulator, merchant):
    imposed = client.post(PENALTIES, headers=merchant.headers, json={
        "party_id": merchant.id, "kind": "warning", "days": 30})
    assert imposed.status_code == 403
    fine = client.post(PENALTIES, headers=regulator.headers, json={
        "party_id": merchant.id, "kind": "fine", "days": 30, "amount": 100})
    paid = client.post(f"{PENALTIES}/{fine.json['id']}/payment", headers=merchant.headers)
    assert paid.status_code == 403
    assert _file(client, merchant, merchant.id)["penalties"][0]["paid"] is False


def test_a_penalty_on_an_unknown_party_is_not_found(client, regulator):
    response = client.post(PENALTIES, headers=regulator.headers, json={
        "party_id": str(uuid.uuid4()), "kind": "warning", "days": 30})
    assert response.status_code == 404


# --- enforcement helpers ---------------------------------------------------------------------

def _impose(client: FlaskClient, by: Member, party: Member, kind: str, days: int) -> None:
    response = client.post(PENALTIES, headers=by.headers, json={
        "party_id": party.id, "kind": kind, "days": days})
    assert response.status_code == 201, response.json


def test_a_party_without_penalties_may_list_and_trade(app, merchant):
    with unit_of_work() as session:
        assert services.ensure_may_list(session, merchant.party.id) is None
        assert services.ensure_may_trade(session, merchant.party.id) is None


def test_a_listing_ban_refuses_listing_but_not_trading_until_it_ends(
        app, client, regulator, merchant):
    _impose(client, regulator, merchant, "listing_ban", 30)
    with unit_of_work() as session:
        with pytest.raises(PartyRestricted) as refused:
            services.ensure_may_list(session, merchant.party.id)
        services.ensure_may_trade(session, merchant.party.id)
    assert (refused.value.status, refused.value.code) == (403, "party_restricted")
    assert refused.value.extra["penalty"] == "listing_ban"

    clock.advance(timedelta(days=30, minutes=1))
    with unit_of_work() as session:
        services.ensure_may_list(session, merchant.party.id)


def test_a_trade_restriction_refuses_trading_but_not_listing(app, client, operator, merchant):
    _impose(client, operator, merchant, "trade_restriction", 10)
    with unit_of_work() as session:
        with pytest.raises(PartyRestricted) as refused:
            services.ensure_may_trade(session, merchant.party.id)
        services.ensure_may_list(session, merchant.party.id)
    assert (refused.value.status, refused.value.code) == (403, "party_restricted")
    assert refused.value.extra["penalty"] == "trade_restriction"


def test_other_penalties_restrict_neither_listing_nor_trading(app, client, operator, merchant):
    _impose(client, operator, merchant, "warning", 30)
    fine = client.post(PENALTIES, headers=operator.headers, json={
        "party_id": merchant.id, "kind": "fine", "days": 30, "amount": 100})
    assert fine.status_code == 201
    with unit_of_work() as session:
        services.ensure_may_list(session, merchant.party.id)
        services.ensure_may_trade(session, merchant.party.id)
    assert len(_file(client, merchant, merchant.id)["penalties"]) == 2


def test_a_severe_finding_restricts_both_listing_and_trading(app, client, regulator, merchant):
    _record(client, regulator, merchant.id, "fraud", "severe")
    with unit_of_work() as session:
        for ensure in (services.ensure_may_list, services.ensure_may_trade):
            with pytest.raises(PartyRestricted):
                ensure(session, merchant.party.id)


# --- blacklist queries -----------------------------------------------------------------------

@pytest.fixture
def listed(client: FlaskClient, regulator: Member) -> list[Member]:
    """Three blacklisted parties (oldest first) and one clean party with a similar name."""
    members = [_named_member(name) for name in
               ("Huaxin Data Co.", "Huaxin Analytics Ltd.", "Blue River 100% Data")]
    for member in members:
        _record(client, regulator, member.id, "data_tampering", "severe")
        clock.advance(timedelta(minutes=1))
    _named_member("Huaxin Clean Co.")
    return members


def test_anyone_sees_only_the_public_fields_of_the_blacklist(
        client, operator, merchant, listed):
    for headers in ({}, merchant.headers, operator.headers):
        response = client.get(BLACKLIST, headers=headers)
        assert response.status_code == 200, response.json
        assert [row["party_id"] for row in response.json] == [m.id for m in reversed(listed)]
        for row in response.json:
            assert set(row) == PUBLIC_FIELDS
        newest = response.json[0]
        assert (newest["name"], newest["credit_code"]) == (
            listed[-1].party.name, listed[-1].party.credit_code)
        assert newest["disputed"] is False and newest["reason"]


def test_regulators_see_the_full_blacklist_record(client, regulator, listed):
    response = client.get(BLACKLIST, headers=regulator.headers)
    assert response.status_code == 200
    assert len(response.json) == 3
    for row, member in zip(response.json, reversed(listed), strict=True):
        assert set(row) == PUBLIC_FIELDS | REGULATOR_ONLY_FIELDS
        [entry] = _blacklistings(member.id)
        assert row["blacklist_id"] == str(entry.id)
        assert row["event_id"] == str(entry.event_id)
        assert row["party_kind"] == "enterprise"
        assert _at(row["publicity_min_until"]) == entry.publicity_min_until


def test_a_wrong_key_on_the_blacklist_is_unauthorized(client, listed):
    response = client.get(BLACKLIST, headers={"Authorization": "Bearer dx_not-a-key"})
    assert response.status_code == 401


@pytest.mark.parametrize(("q", "expected"), [
    ("Huaxin", [1, 0]),
    ("huaxin", [1, 0]),
    ("Analytics", [1]),
    ("100%", [2]),
    ("%", [2]),  # a literal percent sign, not a wildcard
    ("_", []),  # nor is an underscore
    ("Clean", []),  # not blacklisted
    ("Nobody", []),
])
def test_the_blacklist_is_searched_by_a_fragment_of_the_name(client, listed, q, expected):
    response = client.get(BLACKLIST, query_string={"q": q})
    assert response.status_code == 200
    assert [row["party_id"] for row in response.json] == [listed[i].id for i in expected]


def test_the_blacklist_is_searched_by_the_exact_credit_code_in_any_case(client, listed):
    code = listed[1].party.credit_code
    for asked in (code, code.lower(), f" {code.lower()} "):
        response = client.get(BLACKLIST, query_string={"credit_code": asked})
        assert response.status_code == 200
        assert [row["party_id"] for row in response.json] == [listed[1].id]
    partial = client.get(BLACKLIST, query_string={"credit_code": code[:10]})
    assert partial.json == []
    both = client.get(BLACKLIST, query_string={"credit_code": code, "q": "Blue"})
    assert both.json == []


def test_the_blacklist_is_paginated_with_an_x_pagination_header(client, listed):
    first = client.get(BLACKLIST, query_string={"page": 1, "page_size": 2})
    assert first.status_code == 200
    header = json.loads(first.headers["X-Pagination"])
    assert {k: header[k] for k in ("total", "total_pages", "page", "page_size")} == {
        "total": 3, "total_pages": 2, "page": 1, "page_size": 2}
    second = client.get(BLACKLIST, query_string={"page": 2, "page_size": 2})
    assert json.loads(second.headers["X-Pagination"])["page"] == 2
    ids = [row["party_id"] for row in first.json + second.json]
    assert ids == [m.id for m in reversed(listed)]
    searched = client.get(BLACKLIST, query_string={"q": "Huaxin", "page_size": 1})
    assert json.loads(searched.headers["X-Pagination"])["total"] == 2
    assert client.get(BLACKLIST, query_string={"page_size": 101}).status_code == 422


def test_regulators_export_the_blacklist_as_csv(client, regulator, listed):
    response = client.get(BLACKLIST, headers={**regulator.headers, "Accept": "text/csv"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    header, lines = rows[0], rows[1:]
    assert set(PUBLIC_FIELDS) <= set(header)
    assert "publicity_min_until" in header
    assert len(lines) == 3
    records = [dict(zip(header, line, strict=True)) for line in lines]
    assert [r["party_id"] for r in records] == [m.id for m in reversed(listed)]
    assert [r["credit_code"] for r in records] == [m.party.credit_code for m in reversed(listed)]
    searched = client.get(BLACKLIST, query_string={"q": "Analytics"},
                          headers={**regulator.headers, "Accept": "text/csv"})
    assert len(searched.get_data(as_text=True).strip().splitlines()) == 2


def test_the_csv_export_is_refused_to_everyone_but_regulators(client, operator, merchant, listed):
    for headers in ({}, merchant.headers, operator.headers):
        response = client.get(BLACKLIST, headers={**headers, "Accept": "text/csv"})
        assert response.status_code == 403
        assert response.json["code"] == "forbidden"


# --- the credit file -------------------------------------------------------------------------

def test_the_party_itself_operators_and_regulators_read_a_credit_file(
        client, operator, regulator, merchant):
    event = _record(client, regulator, merchant.id, "late_delivery", "minor")
    for viewer in (merchant, operator, regulator):
        file = _file(client, viewer, merchant.id)
        assert file["party_id"] == merchant.id
        assert (file["score"], file["level"]) == (790, "A")
        assert [e["id"] for e in file["events"]] == [event["id"]]


def test_a_party_cannot_read_another_partys_credit_file(client, regulator, merchant):
    _record(client, regulator, merchant.id, "late_delivery", "minor")
    other = make_member(Role.MERCHANT, Role.BUYER)
    refused = client.get(_file_url(merchant.id), headers=other.headers)
    assert refused.status_code == 404
    # The same answer as for a party that does not exist: nothing is revealed.
    missing = client.get(_file_url(uuid.uuid4()), headers=other.headers)
    assert (refused.json["code"], refused.json["detail"]) == (
        missing.json["code"], missing.json["detail"])
    assert "score" not in refused.json
    assert client.get(_file_url(merchant.id)).status_code == 401


def test_an_overseer_asking_for_an_unknown_partys_credit_file_gets_404(client, regulator):
    response = client.get(_file_url(uuid.uuid4()), headers=regulator.headers)
    assert response.status_code == 404
    assert response.json["code"] == "credit_file_not_found"


# --- recompute from the ledger after any sequence of events -----------------------------------

_NEGATIVE = [s for s in Severity if s is not Severity.POSITIVE]
_STEPS = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(sorted(CATALOG)), st.sampled_from(_NEGATIVE),
              st.integers(0, 500)),
    min_size=1, max_size=12)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_STEPS)
def test_recomputing_from_the_ledger_gives_the_cached_scores_after_any_sequence_of_events(
        app, steps):
    db.session.remove()
    empty_tables(app)
    clock.reset()
    regulator = make_member(Role.REGULATOR).party
    parties = [make_member(Role.MERCHANT).party.id for _ in range(3)]
    recorded: dict[uuid.UUID, list[ScoredEvent]] = {party_id: [] for party_id in parties}

    for index, kind, negative_severity, days in steps:
        clock.advance(timedelta(days=days))
        severity = Severity.POSITIVE if CATALOG[kind].positive else negative_severity
        with unit_of_work() as session:
            entry = services.record_event(
                session, party_id=parties[index], kind=kind, severity=severity,
                description="generated", evidence_ref=None, actor=regulator)
            recorded[parties[index]].append(ScoredEvent(entry.points, entry.occurred_at))

    seal_log()
    with unit_of_work() as session:
        assert recompute.recompute_all(session) == []
        profiles = {p.party_id: p for p in session.scalars(sa.select(CreditProfile))}
        assert set(profiles) == {party_id for party_id, events in recorded.items() if events}
        for party_id, profile in profiles.items():
            expected = score(recorded[party_id], profile.computed_at)
            assert (profile.score, profile.level) == (expected, level(expected))
        report = ledger.verify(session, log_verifier())
    assert report.valid and report.entries == len(steps)
