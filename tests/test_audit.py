"""The audit trail and its evidence log: what is written, what is refused, and what the
verifier catches."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import DBAPIError, IntegrityError

from app import audit
from app.audit import AuditEntry, leaf_bytes
from app.db import unit_of_work
from app.extensions import db
from app.log.keys import log_verifier
from app.log.merkle import HASH_SIZE, leaf_hash
from app.log.models import LogLeaf, LogTile, latest_checkpoint
from app.log.note import Signer
from app.log.verification import LogReport, verify_log
from app.parties import services
from app.parties.models import SYSTEM, Party, PartyKind, Role
from tests.factories import Member, PartyBodyFactory, make_member
from tests.support import seal_log

VERIFY = "/api/v1/audit/verify"
PARTIES = "/api/v1/parties"
# Every registration writes two entries: the party and its first API key.
ENTRIES_PER_REGISTRATION = 2


def _entries() -> list[AuditEntry]:
    with unit_of_work() as session:
        return list(session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id)))


def _leaf_entry_ids() -> list[int]:
    with unit_of_work() as session:
        return list(session.scalars(sa.select(LogLeaf.entry_id).order_by(LogLeaf.log_index)))


def _head_hash() -> str:
    with unit_of_work() as session:
        checkpoint = latest_checkpoint(session)
        assert checkpoint is not None
        return checkpoint.root_hash.hex()


def _report(**options: Any) -> LogReport:
    with unit_of_work() as session:
        return verify_log(session, log_verifier(), **options)


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
    seal_log()
    return count


def test_a_log_of_several_state_changes_verifies_for_operator_and_regulator(
        client, operator, regulator, busy_chain):
    for member in (operator, regulator):
        assert _verify(client, member) == {
            "valid": True, "entries": busy_chain, "head_hash": _head_hash(),
            "first_bad_entry": None,
        }


def test_every_state_change_is_an_entry_sealed_once_into_the_log_in_order(client, busy_chain):
    entries = _entries()
    assert [entry.id for entry in entries] == list(range(1, busy_chain + 1))
    assert _leaf_entry_ids() == [entry.id for entry in entries]
    for entry in entries:
        assert entry.payload_digest == audit.digest(entry.details)
    assert [entry.action for entry in entries[-2:]] == ["api_key.issued", "api_key.revoked"]


def test_entries_are_written_unsealed_and_the_next_seal_integrates_only_them(client, busy_chain):
    _register(client)
    assert _count() == busy_chain + ENTRIES_PER_REGISTRATION
    assert len(_leaf_entry_ids()) == busy_chain
    report = seal_log()
    assert (report.sealed, report.tree_size) == (ENTRIES_PER_REGISTRATION, _count())
    assert seal_log().sealed == 0
    assert _leaf_entry_ids() == [entry.id for entry in _entries()]


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


def test_an_empty_log_is_valid_and_has_no_head(app):
    assert _report() == LogReport(valid=True, entries=0, head_hash=None, first_bad_entry=None)


def test_verification_walks_a_log_longer_than_one_batch(app):
    for _ in range(4):
        make_member()
    seal_log()
    report = _report(batch_size=3)
    assert report.valid
    assert report.entries == 4 * ENTRIES_PER_REGISTRATION
    assert report.head_hash == _head_hash()


def test_a_checkpoint_signed_by_another_key_fails_verification(app, busy_chain):
    other = Signer.generate(log_verifier().name)
    with unit_of_work() as session:
        report = verify_log(session, other.verifier)
    assert (report.valid, report.entries, report.first_bad_entry) == (False, busy_chain, None)


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
    assert [entry.id for entry in after] == [entry.id for entry in before]
    seal_log()
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
    seal_log()
    assert _report().valid


def test_several_registrations_in_one_unit_of_work_are_logged_in_order(app):
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
    seal_log()
    assert _report().valid


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
    seal_log()
    assert _report().valid


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
def test_an_entry_changed_behind_the_services_back_is_the_first_bad_entry(
        client, operator, busy_chain, column):
    tampered_id = 4
    value = "party.deleted" if column == "action" else {"credit_code": "forged"}
    _behind_the_service(sa.update(AuditEntry.__table__)
                        .where(AuditEntry.__table__.c.id == tampered_id)
                        .values({column: value}))
    report = _verify(client, operator)
    assert report == {"valid": False, "entries": busy_chain, "head_hash": _head_hash(),
                      "first_bad_entry": tampered_id}


def test_an_entry_forged_with_its_leaf_rewritten_in_the_tiles_fails_the_signed_root(
        client, operator, busy_chain):
    forged_id = 3
    _behind_the_service(sa.update(AuditEntry.__table__)
                        .where(AuditEntry.__table__.c.id == forged_id)
                        .values(action="party.deleted"))
    with unit_of_work() as session:
        forged = session.get(AuditEntry, forged_id)
        tile = session.get(LogTile, (0, 0))
        index = _leaf_entry_ids().index(forged_id)
        data = bytearray(tile.hashes)
        data[index * HASH_SIZE:(index + 1) * HASH_SIZE] = leaf_hash(leaf_bytes(forged))
        session.expunge_all()
    with db.engine.begin() as connection:  # tiles only grow: the forger disables the trigger
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(sa.update(LogTile.__table__).where(
            LogTile.__table__.c.level == 0, LogTile.__table__.c.index == 0)
            .values(hashes=bytes(data)))
    report = _verify(client, operator)
    # Every leaf fits its tile now; only the signed root tells.
    assert report == {"valid": False, "entries": busy_chain, "head_hash": _head_hash(),
                      "first_bad_entry": None}


def test_a_deleted_entry_is_detected_where_it_was(client, operator, busy_chain):
    deleted_id = 5
    _behind_the_service(sa.delete(AuditEntry.__table__)
                        .where(AuditEntry.__table__.c.id == deleted_id))
    report = _verify(client, operator)
    assert report["valid"] is False
    assert report["entries"] == busy_chain  # its leaf is still there, its entry is not
    assert report["first_bad_entry"] == deleted_id


def test_a_deleted_leaf_is_detected_at_the_gap(client, operator, busy_chain):
    leaves = LogLeaf.__table__.c
    _behind_the_service(sa.delete(LogLeaf.__table__).where(leaves.log_index == 4))
    report = _verify(client, operator)
    assert report["valid"] is False
    assert report["entries"] == busy_chain - 1
    assert report["first_bad_entry"] == _leaf_entry_ids()[4]  # the entry now at the gap


def test_two_swapped_leaves_are_detected_at_the_first(client, operator, busy_chain):
    leaves = LogLeaf.__table__.c
    order = _leaf_entry_ids()
    first, second = order[2], order[6]
    _behind_the_service(sa.update(LogLeaf.__table__).where(leaves.log_index.in_([2, 6]))
                        .values(entry_id=sa.case((leaves.entry_id == first, -first),
                                                 else_=-second)))
    _behind_the_service(sa.update(LogLeaf.__table__).where(leaves.log_index.in_([2, 6]))
                        .values(entry_id=sa.case((leaves.entry_id == -first, second),
                                                 else_=first)))
    assert _leaf_entry_ids()[2] == second
    report = _verify(client, operator)
    assert report["valid"] is False
    assert report["first_bad_entry"] == second


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
        session.execute(sa.delete(AuditEntry).where(AuditEntry.id == 2))
    assert [entry.action for entry in _entries()] == ["party.registered", "api_key.issued"]


@pytest.mark.postgres_only
@pytest.mark.parametrize("statement", [
    "UPDATE audit_entries SET action = 'party.deleted' WHERE id = 1",
    "DELETE FROM audit_entries WHERE id = 2",
])
def test_postgresql_refuses_plain_sql_changes_to_audit_entries(app, statement):
    make_member()
    with pytest.raises(DBAPIError) as refused, db.engine.begin() as connection:
        connection.execute(sa.text(statement))
    assert refused.value.orig.sqlstate == "42501"  # insufficient_privilege
    assert "append-only" in str(refused.value.orig)
    assert [entry.action for entry in _entries()] == ["party.registered", "api_key.issued"]


@pytest.mark.postgres_only
def test_concurrent_registrations_are_all_logged_once(app: Flask, operator: Member):
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
    assert len(entries) == expected
    seal_log()
    assert sorted(_leaf_entry_ids()) == [entry.id for entry in entries]
    registered = {entry.subject_id for entry in entries if entry.action == "party.registered"}
    with unit_of_work() as session:
        ids = set(session.scalars(sa.select(Party.id).where(
            Party.credit_code.in_([body["credit_code"] for batch in bodies for body in batch]))))
    assert {str(party_id) for party_id in ids} <= registered
    assert len(ids) == threads * per_thread
    report = _verify(app.test_client(), operator)
    assert report == {"valid": True, "entries": expected, "head_hash": _head_hash(),
                      "first_bad_entry": None}


def test_flask_audit_verify_exits_1_once_the_log_is_tampered_with(app, busy_chain):
    runner = app.test_cli_runner()
    intact = runner.invoke(args=["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert f"valid=True entries={busy_chain}" in intact.output

    _behind_the_service(sa.update(AuditEntry.__table__)
                        .where(AuditEntry.__table__.c.id == 3)
                        .values(action="party.deleted"))
    broken = runner.invoke(args=["audit", "verify"])
    assert broken.exit_code == 1
    assert "valid=False" in broken.output
    assert "first_bad_entry=3" in broken.output


@pytest.mark.parametrize("text", ['plain', 'quote " and \\ backslash', "中文 ünïcode",
                                  "control \x00\x01\n\t\x7f", "emoji \U0001f600 / slash"])
def test_a_leaf_is_the_canonical_json_of_its_entrys_fields(text):
    import uuid
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from app.audit import leaf_bytes, leaf_content
    from app.records import canonical_json

    for actor in (None, uuid.uuid4()):
        entry = SimpleNamespace(id=12345678901, occurred_at=datetime(2026, 1, 2, 3, 4, 5, 6,
                                                                     tzinfo=UTC),
                                actor_id=actor, action=f"a.{text}", subject_type=text,
                                subject_id=text[::-1], payload_digest="ab" * 32)
        assert leaf_bytes(entry) == canonical_json(leaf_content(entry)).encode()
