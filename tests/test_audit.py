"""The hash-chained audit trail: what is written, what is refused, and what the verifier catches."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import DBAPIError, IntegrityError

from app import audit
from app.audit import GENESIS_HASH, AuditEntry
from app.db import unit_of_work
from app.extensions import db
from app.parties import services
from app.parties.models import SYSTEM, Party, PartyKind, Role
from tests.factories import Member, PartyBodyFactory, make_member

VERIFY = "/api/v1/audit/verify"
PARTIES = "/api/v1/parties"
# Every registration writes two entries: the party and its first API key.
ENTRIES_PER_REGISTRATION = 2


def _entries() -> list[AuditEntry]:
    with unit_of_work() as session:
        return list(session.scalars(sa.select(AuditEntry).order_by(AuditEntry.seq)))


def _count() -> int:
    with unit_of_work() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(AuditEntry))


def _behind_the_service(statement: sa.Executable) -> None:
    """Run a statement on a raw connection, as someone with database access would.

    On PostgreSQL the append-only trigger is switched off for that one transaction
    (`session_replication_role = replica` skips ordinary triggers; needs a superuser).
    """
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(statement)


def _register(client: FlaskClient, **overrides: Any) -> dict[str, Any]:
    response = client.post(PARTIES, json=PartyBodyFactory(**overrides))
    assert response.status_code == 201, response.json
    return response.json


def _verify(client: FlaskClient, member: Member) -> dict[str, Any]:
    response = client.get(VERIFY, headers=member.headers)
    assert response.status_code == 200, response.json
    return response.json


@pytest.fixture
def operator() -> Member:
    return make_member(Role.OPERATOR)


@pytest.fixture
def regulator() -> Member:
    return make_member(Role.REGULATOR)


@pytest.fixture
def busy_chain(client: FlaskClient, operator: Member, regulator: Member) -> int:
    """A chain with several kinds of state change in it; returns its length."""
    merchant = _register(client, roles=["merchant"])
    _register(client, roles=["buyer", "broker"])
    issued = client.post(f"{PARTIES}/{merchant['id']}/api-keys",
                         headers={"Authorization": f"Bearer {merchant['api_key']}"})
    assert issued.status_code == 201
    revoked = client.delete(f"{PARTIES}/{merchant['id']}/api-keys/{issued.json['id']}",
                            headers=operator.headers)
    assert revoked.status_code == 204
    count = _count()
    assert count == 4 * ENTRIES_PER_REGISTRATION + 2
    return count


def test_chain_of_several_state_changes_verifies_for_operator_and_regulator(
        client, operator, regulator, busy_chain):
    head = _entries()[-1]
    for member in (operator, regulator):
        assert _verify(client, member) == {
            "valid": True, "entries": busy_chain, "head_hash": head.hash,
            "first_bad_entry": None,
        }


def test_every_state_change_is_an_entry_chained_to_the_one_before(client, busy_chain):
    entries = _entries()
    assert [entry.seq for entry in entries] == list(range(1, busy_chain + 1))
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    for entry in entries:
        assert entry.hash == entry.computed_hash()
        assert entry.payload_digest == audit.digest(entry.details)
    assert [entry.action for entry in entries[-2:]] == ["api_key.issued", "api_key.revoked"]


def test_a_registration_is_recorded_with_its_actor_subject_and_details(client):
    body = _register(client, roles=["merchant"])
    party_entry, key_entry = _entries()
    assert party_entry.action == "party.registered"
    assert (party_entry.subject_type, party_entry.subject_id) == ("parties", body["id"])
    assert str(party_entry.actor_id) == body["id"]  # self-registration is the party's own act
    assert party_entry.details == {"credit_code": body["credit_code"], "kind": "enterprise",
                                   "roles": ["merchant"]}
    assert key_entry.action == "api_key.issued"
    assert (key_entry.subject_type, key_entry.subject_id) == ("api_keys", body["api_key_id"])


def test_an_empty_chain_is_valid_and_has_no_head(app):
    with unit_of_work() as session:
        report = audit.verify_chain(session)
    assert report == audit.ChainReport(valid=True, entries=0, head_hash=None,
                                       first_bad_entry=None)


def test_verification_walks_a_chain_longer_than_one_batch(app):
    for _ in range(4):
        make_member()
    with unit_of_work() as session:
        report = audit.verify_chain(session, batch_size=3)
    assert report.valid
    assert report.entries == 4 * ENTRIES_PER_REGISTRATION
    assert report.head_hash == _entries()[-1].hash


def test_audit_verification_is_for_operators_and_regulators_only(client, busy_chain):
    buyer = make_member(Role.BUYER)
    merchant = make_member(Role.MERCHANT, Role.CERTIFIER)
    for member in (buyer, merchant):
        response = client.get(VERIFY, headers=member.headers)
        assert response.status_code == 403
        assert response.json["code"] == "forbidden"
    anonymous = client.get(VERIFY)
    assert anonymous.status_code == 401
    assert anonymous.json["code"] == "unauthorized"
    wrong_key = client.get(VERIFY, headers={"Authorization": "Bearer dx_not-a-key"})
    assert wrong_key.status_code == 401


def test_a_failed_request_writes_no_entries(client, operator):
    body = _register(client)
    before = _entries()
    duplicate = client.post(PARTIES, json=PartyBodyFactory(credit_code=body["credit_code"]))
    assert duplicate.status_code == 409
    assert duplicate.json["code"] == "duplicate_credit_code"
    invalid = client.post(PARTIES, json=PartyBodyFactory(credit_code="not-a-credit-code"))
    assert invalid.status_code == 422
    forbidden = client.post(PARTIES, json=PartyBodyFactory(roles=["regulator"]))
    assert forbidden.status_code == 403
    after = _entries()
    assert [entry.hash for entry in after] == [entry.hash for entry in before]
    assert _verify(client, operator)["valid"] is True


def test_entries_of_a_unit_of_work_that_raises_are_never_written(app):
    make_member()
    before = _count()
    with pytest.raises(RuntimeError), unit_of_work() as session:
        party, _ = services.register_party(
            session, name="Rolled Back Co.", credit_code=PartyBodyFactory()["credit_code"],
            kind=PartyKind.ENTERPRISE, roles=[Role.BUYER], actor=SYSTEM)
        rolled_back_id = str(party.id)
        raise RuntimeError("fails after the entries were recorded")
    # The next commit must not pick up the rolled-back transaction's entries.
    make_member()
    entries = _entries()
    assert len(entries) == before + ENTRIES_PER_REGISTRATION
    assert rolled_back_id not in {entry.subject_id for entry in entries}
    with unit_of_work() as session:
        assert session.scalar(sa.select(Party).where(Party.name == "Rolled Back Co.")) is None
        assert audit.verify_chain(session).valid


def test_several_registrations_in_one_unit_of_work_are_chained_in_order(app):
    with unit_of_work() as session:
        registered = [
            services.register_party(session, name=f"Batch {n} Co.",
                                    credit_code=PartyBodyFactory()["credit_code"],
                                    kind=PartyKind.ENTERPRISE, roles=[Role.BUYER],
                                    actor=SYSTEM)[0]
            for n in range(3)
        ]
    entries = _entries()
    assert [entry.action for entry in entries] == ["party.registered", "api_key.issued"] * 3
    assert [entry.subject_id for entry in entries[::2]] == [str(p.id) for p in registered]
    with unit_of_work() as session:
        assert audit.verify_chain(session).valid


def test_an_entry_recorded_before_a_failed_savepoint_commits_with_its_transaction(app):
    taken = make_member().party.credit_code
    before = _count()
    with unit_of_work() as session:
        audit.record(session, actor_id=None, action="test.kept", subject="s-1",
                     subject_type="test")
        # The clash surfaces when the savepoint is released, not inside the block.
        with pytest.raises(IntegrityError), session.begin_nested():
            session.add(Party(name="Clash", credit_code=taken, kind=PartyKind.ENTERPRISE,
                              roles=["buyer"]))
    entries = _entries()
    assert len(entries) == before + 1
    assert (entries[-1].action, entries[-1].subject_id) == ("test.kept", "s-1")
    with unit_of_work() as session:
        assert audit.verify_chain(session).valid


def test_an_entry_recorded_inside_a_rolled_back_savepoint_is_not_written(app):
    before = _count()
    with unit_of_work() as session:
        audit.record(session, actor_id=None, action="test.outer", subject="s-1",
                     subject_type="test")
        savepoint = session.begin_nested()
        audit.record(session, actor_id=None, action="test.undone", subject="s-2",
                     subject_type="test")
        savepoint.rollback()
        with session.begin_nested():
            audit.record(session, actor_id=None, action="test.released", subject="s-3",
                         subject_type="test")
    actions = [entry.action for entry in _entries()[before:]]
    assert actions == ["test.outer", "test.released"]


@pytest.mark.parametrize("column", ["action", "details"])
def test_a_row_changed_behind_the_services_back_is_the_first_bad_entry(
        client, operator, busy_chain, column):
    tampered_seq = 4
    value = "party.deleted" if column == "action" else {"credit_code": "forged"}
    _behind_the_service(sa.update(AuditEntry.__table__)
                        .where(AuditEntry.__table__.c.seq == tampered_seq)
                        .values({column: value}))
    report = _verify(client, operator)
    assert report["valid"] is False
    assert report["first_bad_entry"] == tampered_seq
    assert report["entries"] == busy_chain
    assert report["head_hash"] == _entries()[-1].hash


def test_a_forged_entry_with_a_recomputed_hash_breaks_the_link_to_its_successor(
        client, operator, busy_chain):
    stored = _entries()[2]
    # A detached copy: the forger's arithmetic, not a change the session would flush.
    forged = AuditEntry(**{column.key: getattr(stored, column.key)
                           for column in AuditEntry.__table__.columns})
    forged.action = "party.deleted"
    forged_hash = forged.computed_hash()
    _behind_the_service(sa.update(AuditEntry.__table__)
                        .where(AuditEntry.__table__.c.seq == forged.seq)
                        .values(action="party.deleted", hash=forged_hash))
    report = _verify(client, operator)
    assert report["valid"] is False
    assert report["first_bad_entry"] == forged.seq + 1


def test_a_deleted_middle_row_is_detected(client, operator, busy_chain):
    deleted_seq = 5
    _behind_the_service(sa.delete(AuditEntry.__table__)
                        .where(AuditEntry.__table__.c.seq == deleted_seq))
    report = _verify(client, operator)
    assert report["valid"] is False
    assert report["entries"] == busy_chain - 1
    # The row that now follows entry 4 no longer fits: the gap is reported where it is.
    assert report["first_bad_entry"] == deleted_seq + 1


def test_the_orm_refuses_to_change_an_audit_entry(app):
    make_member()
    with pytest.raises(PermissionError), unit_of_work() as session:
        session.get(AuditEntry, 1).action = "party.deleted"
        session.flush()
    with pytest.raises(PermissionError), unit_of_work() as session:
        session.delete(session.get(AuditEntry, 2))
        session.flush()
    assert [entry.action for entry in _entries()] == ["party.registered", "api_key.issued"]


def test_the_orm_refuses_bulk_updates_and_deletes_of_audit_entries(app):
    make_member()
    with pytest.raises(PermissionError), unit_of_work() as session:
        session.execute(sa.update(AuditEntry).values(action="party.deleted"))
    with pytest.raises(PermissionError), unit_of_work() as session:
        session.execute(sa.delete(AuditEntry).where(AuditEntry.seq == 2))
    assert [entry.action for entry in _entries()] == ["party.registered", "api_key.issued"]
    with unit_of_work() as session:
        assert audit.verify_chain(session).valid


@pytest.mark.postgres_only
@pytest.mark.parametrize("statement", [
    "UPDATE audit_entries SET action = 'party.deleted' WHERE seq = 1",
    "DELETE FROM audit_entries WHERE seq = 2",
])
def test_postgresql_refuses_plain_sql_changes_to_audit_entries(app, statement):
    make_member()
    with pytest.raises(DBAPIError) as refused, db.engine.begin() as connection:
        connection.execute(sa.text(statement))
    assert refused.value.orig.sqlstate == "42501"  # insufficient_privilege
    assert "append-only" in str(refused.value.orig)
    assert [entry.action for entry in _entries()] == ["party.registered", "api_key.issued"]


@pytest.mark.postgres_only
def test_concurrent_registrations_append_one_unforked_chain(app: Flask, operator: Member):
    threads, per_thread = 8, 10
    bodies = [[PartyBodyFactory() for _ in range(per_thread)] for _ in range(threads)]
    before = _count()
    start = threading.Barrier(threads)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def register_all(batch: list[dict[str, Any]]) -> None:
        try:
            client = app.test_client()
            start.wait()
            statuses.extend(client.post(PARTIES, json=body).status_code for body in batch)
        except BaseException as error:  # surfaced in the main thread
            errors.append(error)

    workers = [threading.Thread(target=register_all, args=(batch,)) for batch in bodies]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not errors
    assert statuses == [201] * threads * per_thread

    expected = before + threads * per_thread * ENTRIES_PER_REGISTRATION
    entries = _entries()
    assert [entry.seq for entry in entries] == list(range(1, expected + 1))
    assert len({entry.prev_hash for entry in entries}) == expected  # no fork
    registered = {entry.subject_id for entry in entries if entry.action == "party.registered"}
    with unit_of_work() as session:
        ids = set(session.scalars(sa.select(Party.id).where(
            Party.credit_code.in_([body["credit_code"] for batch in bodies for body in batch]))))
    assert {str(party_id) for party_id in ids} <= registered
    assert len(ids) == threads * per_thread
    report = _verify(app.test_client(), operator)
    assert report == {"valid": True, "entries": expected, "head_hash": entries[-1].hash,
                      "first_bad_entry": None}


def test_flask_audit_verify_exits_1_once_the_chain_is_tampered_with(app, busy_chain):
    runner = app.test_cli_runner()
    intact = runner.invoke(args=["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert f"valid=True entries={busy_chain}" in intact.output

    _behind_the_service(sa.update(AuditEntry.__table__)
                        .where(AuditEntry.__table__.c.seq == 3)
                        .values(action="party.deleted"))
    broken = runner.invoke(args=["audit", "verify"])
    assert broken.exit_code == 1
    assert "valid=False" in broken.output
    assert "first_bad_entry=3" in broken.output
