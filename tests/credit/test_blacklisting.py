"""Level-D blacklisting follows the party's level, not the finding that tipped it; a severe
finding's listing follows that finding; the regulators' CSV export holds the whole list."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from app import clock
from app.parties.models import Role
from app.scheduler import run_job
from tests.credit.api import (
    CREDIT,
    at,
    blacklist,
    credit_file,
    listings_of,
    object_and_decide,
    record,
)
from tests.factories import make_member

MAX_PUBLICITY = timedelta(days=3 * 365)


def _serious(client, regulator, merchant, count: int) -> list[dict]:
    return [record(client, regulator, merchant, "non_delivery", "serious") for _ in range(count)]


def _restrictions(file: dict) -> dict[str, dict]:
    return {p["kind"]: p for p in file["penalties"]
            if p["kind"] in ("trade_restriction", "listing_ban")}


# --- level D lists the party, with the blacklist's penalties --------------------------------

def test_dropping_to_level_d_lists_the_party_with_trade_and_listing_bans_for_the_publicity(
        client, regulator, merchant):
    findings = _serious(client, regulator, merchant, 4)

    file = credit_file(client, regulator, merchant)

    assert (file["score"], file["level"], file["blacklisted"]) == (480, "D", True)
    listing = file["blacklisting"]
    assert at(listing["publicity_until"]) == at(listing["listed_at"]) + MAX_PUBLICITY
    restrictions = _restrictions(file)
    assert set(restrictions) == {"trade_restriction", "listing_ban"}
    for penalty in restrictions.values():
        assert penalty["event_id"] == findings[-1]["id"]
        assert (penalty["starts_at"], penalty["ends_at"]) == (
            listing["listed_at"], listing["publicity_until"])


def test_revoking_the_finding_that_tipped_level_d_keeps_the_listing_while_the_level_is_d(
        client, regulator, merchant):
    findings = _serious(client, regulator, merchant, 5)  # 400: D since the fourth
    [before] = listings_of(merchant)

    decided = object_and_decide(client, merchant, regulator, findings[3]["id"], "revoked")

    assert decided.status_code == 200, decided.json
    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"], file["blacklisted"]) == (480, "D", True)
    # The same listing, neither ended nor restarted, and its bans still in force.
    [after] = listings_of(merchant)
    assert (after.id, after.listed_at, after.ended_at) == (before.id, before.listed_at, None)
    assert set(_restrictions(file)) == {"trade_restriction", "listing_ban"}
    assert [row["party_id"] for row in blacklist(client)] == [merchant.id]


def test_revoking_a_severe_finding_lists_a_party_still_at_level_d_for_level_d(
        client, regulator, merchant):
    severe = record(client, regulator, merchant, "lost_dispute", "severe")
    serious = _serious(client, regulator, merchant, 4)
    assert credit_file(client, merchant, merchant)["score"] == 280
    assert len(listings_of(merchant)) == 1  # the severe finding's listing covers level D

    decided = object_and_decide(client, merchant, regulator, severe["id"], "revoked")

    assert decided.status_code == 200, decided.json
    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"], file["blacklisted"]) == (480, "D", True)
    assert file["blacklisting"]["reason"].startswith("Credit level D")
    ended, listed = listings_of(merchant)
    assert (str(ended.event_id), ended.end_reason) == (severe["id"], "revoked")
    assert str(listed.event_id) == serious[-1]["id"] and listed.ended_at is None
    assert set(_restrictions(file)) == {"trade_restriction", "listing_ban"}
    [row] = blacklist(client, regulator)
    assert row["event_id"] == serious[-1]["id"]


def test_a_correction_that_drops_the_party_to_level_d_lists_it(client, regulator, merchant):
    _serious(client, regulator, merchant, 3)
    minor = record(client, regulator, merchant, "late_delivery", "minor")
    assert credit_file(client, merchant, merchant)["blacklisted"] is False

    decided = object_and_decide(client, merchant, regulator, minor["id"], "corrected",
                                correction={"severity": "serious"})

    assert decided.status_code == 200, decided.json
    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"], file["blacklisted"]) == (480, "D", True)
    [row] = blacklist(client, regulator)
    assert row["event_id"] == decided.json["correction_id"]


# --- above D, a level-D listing ends; a severe finding's does not ---------------------------

def test_a_positive_event_that_lifts_the_level_above_d_ends_the_level_d_listing(
        client, regulator, merchant):
    _serious(client, regulator, merchant, 4)
    assert credit_file(client, merchant, merchant)["level"] == "D"

    record(client, regulator, merchant, "clean_year", "positive")

    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"], file["blacklisted"]) == (500, "C", False)
    assert _restrictions(file) == {}
    [ended] = listings_of(merchant)
    assert ended.end_reason == "level_restored"
    assert blacklist(client) == []


def test_a_severe_findings_listing_stays_when_the_level_rises_above_d(client, regulator,
                                                                      merchant):
    severe = record(client, regulator, merchant, "lost_dispute", "severe")
    serious = _serious(client, regulator, merchant, 2)
    assert credit_file(client, merchant, merchant)["level"] == "D"

    decided = object_and_decide(client, merchant, regulator, serious[0]["id"], "revoked")

    assert decided.status_code == 200, decided.json
    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"], file["blacklisted"]) == (520, "C", True)
    [listing] = listings_of(merchant)
    assert str(listing.event_id) == severe["id"] and listing.ended_at is None
    assert set(_restrictions(file)) == {"trade_restriction", "listing_ban"}


def test_a_positive_event_never_lists_a_party_at_level_d(app, client, regulator, merchant):
    # A party that stays at level D until its listing's three years are over: sixteen findings
    # (D from the fourth, listed once), which weigh a quarter after two years (480, still D),
    # then four more shortly before the listing ends, which keep it at D once the sixteen
    # weigh nothing.
    _serious(client, regulator, merchant, 16)
    clock.advance(timedelta(days=1000))
    _serious(client, regulator, merchant, 4)
    assert len(listings_of(merchant)) == 1
    clock.advance(timedelta(days=96))
    assert run_job(app, "end_expired_publicity") is True
    file = credit_file(client, merchant, merchant)
    assert (file["level"], file["blacklisted"]) == ("D", False)

    record(client, regulator, merchant, "on_time_trade", "positive")

    file = credit_file(client, merchant, merchant)
    assert (file["score"], file["level"], file["blacklisted"]) == (482, "D", False)
    assert blacklist(client) == []
    # A new finding at level D is a new decision: it lists the party again.
    late = record(client, regulator, merchant, "late_delivery", "minor")
    [row] = blacklist(client, regulator)
    assert row["event_id"] == late["id"]


# --- the regulators' CSV export --------------------------------------------------------------

def test_the_csv_export_holds_every_listed_party_whatever_the_page(client, regulator):
    members = [make_member(Role.MERCHANT) for _ in range(23)]
    for member in members:
        record(client, regulator, member, "data_tampering", "severe")
        clock.advance(timedelta(seconds=1))
    csv_headers = {**regulator.headers, "Accept": "text/csv"}

    exported = client.get(f"{CREDIT}/blacklist", headers=csv_headers,
                          query_string={"page": 2, "page_size": 5})

    assert exported.status_code == 200
    assert exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert [row["party_id"] for row in rows] == [m.id for m in reversed(members)]
    assert json.loads(exported.headers["X-Pagination"])["total"] == 23
    # JSON stays paginated: the default page of 20, or the page asked for.
    assert len(blacklist(client, regulator)) == 20
    page = blacklist(client, regulator, page=2, page_size=5)
    assert [row["party_id"] for row in page] == [m.id for m in reversed(members)][5:10]
