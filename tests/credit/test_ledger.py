"""The credit ledger in the evidence log: each entry the content of its leaf, verified through
GET /credit/ledger/verify; tampering behind the service found; writers for different parties
never waiting on each other, and never deadlocking over their profiles."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.exc import DBAPIError

from app.audit import AuditEntry, digest
from app.db import unit_of_work
from app.extensions import db
from app.log.models import LogLeaf
from app.parties.models import Role
from credit import ledger, recompute, services
from credit.catalog import Severity
from credit.models import CreditEntry
from tests.factories import Member, make_member
from tests.support import ok, race, seal_log

EVENTS = "/api/v1/credit/events"
VERIFY = "/api/v1/credit/ledger/verify"
CHECKPOINT = "/api/v1/log/checkpoint"


def _record(client: FlaskClient, recorder: Member, party_id: str, kind: str,
            severity: str) -> dict[str, Any]:
    return ok(client.post(EVENTS, headers=recorder.headers, json={
        "party_id": party_id, "kind": kind, "severity": severity,
        "description": "Found by the exchange", "evidence_ref": "case-file-1"}), 201)


def _verify(client: FlaskClient, member: Member) -> dict[str, Any]:
    return ok(client.get(VERIFY, headers=member.headers))


def _root(client: FlaskClient) -> str:
    checkpoint = ok(client.get(CHECKPOINT, headers={"Accept": "application/json"}))
    return str(checkpoint["root_hash"])


def _credit_entries() -> list[CreditEntry]:
    """The entries as they are now, detached: what a test changes later does not reach them."""
    with unit_of_work() as session:
        entries = list(session.scalars(sa.select(CreditEntry).order_by(CreditEntry.seq)
                                       .execution_options(populate_existing=True)))
        for entry in entries:
            session.expunge(entry)
    return entries


def _behind_the_service(statement: sa.Executable) -> None:
    """Run a statement on a raw connection, as someone with database access would
    (on PostgreSQL with the append-only triggers and foreign keys switched off for it)."""
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(statement)
    db.session.expire_all()  # the entries read before are read again


def _times_integrated(seqs: list[int]) -> dict[int, int]:
    """How many leaves of the log hold each credit entry's audit entry."""
    with unit_of_work() as session:
        counted = dict(session.execute(
            sa.select(LogLeaf.entry_id, sa.func.count()).where(LogLeaf.entry_id.in_(seqs))
            .group_by(LogLeaf.entry_id)).tuples().all())
    return {seq: counted.get(seq, 0) for seq in seqs}


@pytest.fixture
def three_events(client: FlaskClient, regulator: Member, merchant: Member) -> list[dict]:
    events = [_record(client, regulator, merchant.id, kind, severity) for kind, severity in (
        ("late_delivery", "minor"), ("on_time_trade", "positive"),
        ("unfair_competition", "serious"))]
    seal_log()
    return events


# --- each entry a leaf of the log --------------------------------------------------------------

def test_the_credit_ledger_verifies_against_the_log_for_operators_and_regulators(
        client, operator, regulator, three_events):
    for member in (operator, regulator):
        assert _verify(client, member) == {"valid": True, "entries": 3,
                                           "head_hash": _root(client),
                                           "first_bad_entry": None}


def test_each_credit_entry_is_numbered_by_its_audit_entry_whose_details_are_its_content(
        app, three_events):
    entries = _credit_entries()
    with unit_of_work() as session:
        logged = {entry.id: entry for entry in session.scalars(
            sa.select(AuditEntry).where(AuditEntry.action == ledger.ENTRY_ACTION))}
    assert sorted(logged) == [entry.seq for entry in entries]
    for entry, event in zip(entries, three_events, strict=True):
        audit_entry = logged[entry.seq]
        assert (audit_entry.subject_type, audit_entry.subject_id) == (
            "credit_entries", str(entry.id))
        assert audit_entry.details == entry.content()
        assert audit_entry.payload_digest == digest(entry.content()) == event["hash"]
    assert _times_integrated([entry.seq for entry in entries]) == {
        entry.seq: 1 for entry in entries}


def test_entries_the_sealer_has_not_integrated_yet_are_not_counted_nor_faults(
        client, regulator, merchant, three_events):
    _record(client, regulator, merchant.id, "late_delivery", "minor")
    assert _verify(client, regulator) == {"valid": True, "entries": 3,
                                          "head_hash": _root(client), "first_bad_entry": None}
    seal_log()
    assert _verify(client, regulator)["entries"] == 4


def test_credit_ledger_verification_is_refused_to_buyers_merchants_and_anonymous_callers(
        client, merchant, three_events):
    buyer = make_member(Role.BUYER)
    for member in (buyer, merchant):
        response = client.get(VERIFY, headers=member.headers)
        assert response.status_code == 403
        assert response.json["code"] == "forbidden"
    assert client.get(VERIFY).status_code == 401


# --- tampering behind the service ------------------------------------------------------------

@pytest.mark.parametrize(("column", "value"), [
    ("points", 0), ("description", "Nothing happened"), ("kind", "fraud"),
    ("party_id", None),
])
def test_a_credit_entry_changed_behind_the_services_back_is_the_first_bad_entry(
        client, operator, three_events, column, value):
    second = _credit_entries()[1]
    if column == "party_id":
        value = make_member(Role.MERCHANT).party.id
    table = CreditEntry.__table__
    _behind_the_service(sa.update(table).where(table.c.seq == second.seq)
                        .values({column: value}))
    assert _verify(client, operator) == {"valid": False, "entries": 3,
                                         "head_hash": _root(client),
                                         "first_bad_entry": second.seq}


def test_a_credit_entry_deleted_behind_the_services_back_is_found_by_its_leaf(
        client, operator, three_events):
    first = _credit_entries()[0]
    table = CreditEntry.__table__
    _behind_the_service(sa.delete(table).where(table.c.seq == first.seq))
    report = _verify(client, operator)
    assert (report["valid"], report["entries"], report["first_bad_entry"]) == (
        False, 3, first.seq)


def test_a_credit_entry_and_its_audit_entry_changed_alike_still_fail_against_the_log(
        client, operator, three_events):
    third = _credit_entries()[2]
    forged = {**third.content(), "points": 0}
    credit, audit = CreditEntry.__table__, AuditEntry.__table__
    _behind_the_service(sa.update(credit).where(credit.c.seq == third.seq).values(points=0))
    _behind_the_service(sa.update(audit).where(audit.c.id == third.seq)
                        .values(details=forged, payload_digest=digest(forged)))
    report = _verify(client, operator)
    assert report["valid"] is False
    assert report["first_bad_entry"] == third.seq  # each row fits the other, not the leaf


def test_a_credit_entry_without_its_audit_entry_is_the_first_bad_entry(
        client, operator, three_events):
    second = _credit_entries()[1]
    credit = CreditEntry.__table__
    _behind_the_service(sa.insert(credit).values({
        **{column.key: getattr(second, column.key) for column in credit.columns},
        "seq": second.seq + 10_000, "id": uuid.uuid4()}))
    report = _verify(client, operator)
    assert (report["valid"], report["entries"], report["first_bad_entry"]) == (
        False, 4, second.seq + 10_000)


def test_recompute_reports_a_cached_score_that_no_longer_matches_a_tampered_ledger(
        app, client, merchant, three_events):
    with unit_of_work() as session:
        assert recompute.recompute_all(session) == []
    table = CreditEntry.__table__
    third = _credit_entries()[2]
    _behind_the_service(sa.update(table).where(table.c.seq == third.seq).values(points=-10))
    with unit_of_work() as session:
        differences = recompute.recompute_all(session)
    # 800 - 10 + 2 - 80 was cached; the forged entry says 800 - 10 + 2 - 10.
    assert differences == [{"party_id": merchant.id, "cached": 712, "recomputed": 782}]


def test_the_orm_refuses_to_change_or_delete_a_credit_entry(app, regulator, three_events):
    seqs = [entry.seq for entry in _credit_entries()]
    with pytest.raises(PermissionError), unit_of_work() as session:
        session.get(CreditEntry, seqs[0]).points = 0
        session.flush()
    with pytest.raises(PermissionError), unit_of_work() as session:
        session.delete(session.get(CreditEntry, seqs[1]))
        session.flush()
    with pytest.raises(PermissionError), unit_of_work() as session:
        session.execute(sa.update(CreditEntry).values(points=0))
    with pytest.raises(PermissionError), unit_of_work() as session:
        session.execute(sa.delete(CreditEntry).where(CreditEntry.seq == seqs[2]))
    assert [(e.seq, e.points) for e in _credit_entries()] == list(zip(seqs, [-10, 2, -80],
                                                                      strict=True))
    assert _verify(app.test_client(), regulator)["valid"] is True


@pytest.mark.postgres_only
@pytest.mark.parametrize("statement", [
    "UPDATE credit_entries SET points = 0 WHERE seq = :seq",
    "DELETE FROM credit_entries WHERE seq = :seq",
])
def test_postgresql_refuses_plain_sql_changes_to_credit_entries(app, three_events, statement):
    seq = _credit_entries()[0].seq
    with pytest.raises(DBAPIError) as refused, db.engine.begin() as connection:
        connection.execute(sa.text(statement), {"seq": seq})
    assert refused.value.orig.sqlstate == "42501"  # insufficient_privilege
    assert "append-only" in str(refused.value.orig)
    assert [e.points for e in _credit_entries()] == [-10, 2, -80]


# --- concurrency -----------------------------------------------------------------------------

def _record_in(session: Any, party_id: uuid.UUID, recorder: Member) -> None:
    services.record_event(session, party_id=party_id, kind="on_time_trade",
                          severity=Severity.POSITIVE, description="Concurrent trade",
                          evidence_ref=None, actor=recorder.party)


@pytest.mark.postgres_only
def test_a_writer_for_another_party_commits_while_a_credit_transaction_is_held_open(
        app, regulator, merchant):
    """No lock is common to every credit writer: a transaction appending for one party and
    left open does not hold back one appending for another (the hash chain's lock did)."""
    other = make_member(Role.MERCHANT)
    finished = threading.Event()
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            with app.app_context(), unit_of_work() as session:
                _record_in(session, other.party.id, regulator)
            finished.set()
        except BaseException as error:  # surfaced in the main thread
            errors.append(error)

    with unit_of_work() as session:
        _record_in(session, merchant.party.id, regulator)  # its entry written, not committed
        thread = threading.Thread(target=second_writer)
        thread.start()
        committed_meanwhile = finished.wait(30)
    thread.join(60)

    assert not errors
    assert committed_meanwhile, "the second writer waited for the first transaction"
    seal_log()
    entries = _credit_entries()
    assert {entry.party_id for entry in entries} == {merchant.party.id, other.party.id}
    assert _times_integrated([entry.seq for entry in entries]) == {
        entry.seq: 1 for entry in entries}
    assert _verify(app.test_client(), regulator) == {
        "valid": True, "entries": 2, "head_hash": _root(app.test_client()),
        "first_bad_entry": None}


@pytest.mark.postgres_only
def test_concurrent_findings_about_many_parties_are_each_integrated_once(
        app, regulator):
    parties = [make_member(Role.MERCHANT) for _ in range(4)]
    findings_each = 3

    def send(client: FlaskClient, n: int) -> Any:
        return client.post(EVENTS, headers=regulator.headers, json={
            "party_id": parties[n % len(parties)].id, "kind": "late_delivery",
            "severity": "minor", "description": f"Found concurrently ({n})"})

    answers = race(app, len(parties) * findings_each, send)
    assert [answer.status_code for answer in answers] == [201] * len(answers)
    seal_log()
    entries = _credit_entries()
    assert len(entries) == len(answers)
    assert _times_integrated([entry.seq for entry in entries]) == {
        entry.seq: 1 for entry in entries}
    client = app.test_client()
    assert _verify(client, regulator) == {"valid": True, "entries": len(answers),
                                          "head_hash": _root(client), "first_bad_entry": None}
    with unit_of_work() as session:
        assert recompute.recompute_all(session) == []
    for party in parties:
        file = ok(client.get(f"/api/v1/credit/parties/{party.id}", headers=regulator.headers))
        assert (file["score"], len(file["events"])) == (800 - 10 * findings_each, findings_each)


@pytest.mark.postgres_only
def test_ten_concurrent_findings_about_one_party_are_numbered_in_turn_on_one_score(
        app, regulator, merchant):
    count = 10

    def send(client: FlaskClient, n: int) -> Any:
        return client.post(EVENTS, headers=regulator.headers, json={
            "party_id": merchant.id, "kind": "late_delivery", "severity": "minor",
            "description": "Found concurrently"})

    assert [answer.status_code for answer in race(app, count, send)] == [201] * count
    seal_log()
    client = app.test_client()
    assert _verify(client, regulator) == {"valid": True, "entries": count,
                                          "head_hash": _root(client), "first_bad_entry": None}
    file = ok(client.get(f"/api/v1/credit/parties/{merchant.id}", headers=regulator.headers))
    assert (file["score"], file["level"], len(file["events"])) == (800 - 10 * count, "B", count)
    with unit_of_work() as session:
        assert recompute.recompute_all(session) == []


@pytest.mark.postgres_only
def test_two_transactions_crediting_the_same_two_parties_in_opposite_orders_never_deadlock(
        app, regulator, merchant):
    """Completing an order credits its merchant and its buyer in one transaction; another
    order between the same parties the other way round credits them in the opposite order.
    Each takes both profiles first, in party order, so neither holds one the other waits
    for (without the chain's lock, which every writer once took first)."""
    buyer = make_member(Role.BUYER)
    orders = [(merchant.party.id, buyer.party.id), (buyer.party.id, merchant.party.id)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def complete(first: uuid.UUID, second: uuid.UUID) -> None:
        try:
            with app.app_context(), unit_of_work() as session:
                start.wait(10)
                services.lock_profiles(session, (first, second))
                _record_in(session, first, regulator)
                _record_in(session, second, regulator)
        except BaseException as error:  # surfaced in the main thread
            errors.append(error)

    threads = [threading.Thread(target=complete, args=pair) for pair in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not errors
    seal_log()
    client = app.test_client()
    assert _verify(client, regulator)["entries"] == 4
    for party in (merchant, buyer):
        file = ok(client.get(f"/api/v1/credit/parties/{party.id}", headers=regulator.headers))
        assert len(file["events"]) == 2


def test_a_transaction_asking_for_a_second_profile_after_taking_one_is_refused(
        app, regulator, merchant):
    """Taking profiles one after another is the order that deadlocks against a transaction
    taking them the other way round: refused whatever the ids, so it never ships."""
    buyer = make_member(Role.BUYER)
    with pytest.raises(services.ProfileLockOrder), unit_of_work() as session:
        _record_in(session, merchant.party.id, regulator)
        _record_in(session, buyer.party.id, regulator)
    assert _credit_entries() == []
    with unit_of_work() as session:  # the next transaction starts afresh
        services.lock_profiles(session, (buyer.party.id, merchant.party.id))
        _record_in(session, merchant.party.id, regulator)
        _record_in(session, buyer.party.id, regulator)
        services.lock_profile(session, buyer.party.id)  # one it holds: granted
    assert len(_credit_entries()) == 2
