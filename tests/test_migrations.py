"""Migrations: one head, upgrade from empty and back, and models in agreement with them."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from app import MIGRATIONS_DIR, clock
from app.audit import AuditEntry, digest
from app.db import unit_of_work
from app.extensions import db
from app.log.keys import log_verifier
from app.log.models import LogLeaf
from app.log.verification import verify_log
from app.parties.models import Party
from app.parties.names import name_key
from credit import ledger as credit_ledger
from credit.models import CreditEntry
from tests.factories import PartyBodyFactory, make_member, new_credit_code
from tests.support import seal_log


def test_migrations_have_a_single_head():
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_models_and_migrations_agree_as_flask_db_check_reports(app):
    result = app.test_cli_runner().invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output


def test_flask_db_check_fails_when_a_model_has_no_migration(app):
    stray = sa.Table("stray_model", db.metadata, sa.Column("id", sa.Integer, primary_key=True))
    try:
        result = app.test_cli_runner().invoke(args=["db", "check"])
    finally:
        db.metadata.remove(stray)
    assert result.exit_code != 0


def test_downgrade_to_empty_and_upgrade_again_rebuilds_every_table(app):
    downgrade(revision="base")
    db.session.remove()
    assert set(sa.inspect(db.engine).get_table_names()) <= {"alembic_version"}
    upgrade()
    db.session.remove()
    assert set(db.metadata.tables) <= set(sa.inspect(db.engine).get_table_names())


def test_parties_named_alike_before_names_were_compared_leave_the_key_to_the_oldest(app, client):
    downgrade(revision="0013")
    db.session.remove()
    now = clock.now()
    names = ["Acme Data Co.", "ACME  data co.", "上海数据有限公司"]
    rows = [{"id": uuid.uuid4(), "name": name, "credit_code": new_credit_code(),
             "kind": "enterprise", "roles": ["buyer"], "created_at": now + timedelta(seconds=n)}
            for n, name in enumerate(names)]
    with db.engine.begin() as connection:
        connection.execute(sa.insert(Party.__table__).values(
            {column: sa.bindparam(column) for column in rows[0]}), rows)

    upgrade()
    db.session.remove()

    keys = dict(db.session.execute(sa.select(Party.id, Party.name_key)).all())
    assert [keys[row["id"]] for row in rows] == [name_key(names[0]), None, name_key(names[2])]
    taken = client.post("/api/v1/parties", json=PartyBodyFactory(name="Acme data CO."))
    assert (taken.status_code, taken.json["code"]) == (409, "duplicate_party_name")


def test_audit_entries_of_the_hash_chain_are_logged_in_their_chain_order(app):
    downgrade(revision="0016")
    db.session.remove()
    now = clock.now()
    chain = sa.table("audit_entries", *(sa.column(name) for name in (
        "seq", "occurred_at", "actor_id", "action", "subject_type", "subject_id", "details",
        "payload_digest", "prev_hash", "hash")))
    rows = [{"seq": seq, "occurred_at": now + timedelta(seconds=seq), "actor_id": None,
             "action": f"test.{seq}", "subject_type": "test", "subject_id": str(seq),
             "details": json.dumps({"seq": seq}), "payload_digest": digest({"seq": seq}),
             "prev_hash": f"{seq - 1:064x}", "hash": f"{seq:064x}"} for seq in (3, 1, 2)]
    with db.engine.begin() as connection:
        connection.execute(sa.insert(chain), rows)

    upgrade()
    db.session.remove()

    seal_log()
    with unit_of_work() as session:
        logged = session.execute(sa.select(AuditEntry.id, AuditEntry.action).join(
            LogLeaf, LogLeaf.entry_id == AuditEntry.id).order_by(LogLeaf.log_index)).all()
        assert verify_log(session, log_verifier()).valid
    assert logged == [(1, "test.1"), (2, "test.2"), (3, "test.3")]
    make_member()  # new entries take ids after them
    assert [entry.id for entry in db.session.scalars(
        sa.select(AuditEntry).order_by(AuditEntry.id))][3:] == [4, 5]


def test_credit_entries_of_the_hash_chain_become_leaves_in_their_chain_order(app, client):
    downgrade(revision="0019")
    db.session.remove()
    now = clock.now()
    party = {"id": uuid.uuid4(), "name": "Chained Data Co.", "credit_code": new_credit_code(),
             "kind": "enterprise", "roles": ["merchant"], "created_at": now}
    audit_rows = [{"id": n, "occurred_at": now, "actor_id": None, "action": f"test.{n}",
                   "subject_type": "test", "subject_id": str(n), "details": json.dumps({}),
                   "payload_digest": digest({})} for n in (1, 2)]
    chain = sa.table("credit_entries", *(sa.column(name) for name in (
        "seq", "id", "party_id", "action", "kind", "severity", "points", "description",
        "evidence_ref", "refers_to", "recorded_by", "occurred_at", "prev_hash", "hash")))
    first = uuid.uuid4()
    rows = [{"seq": seq, "id": uuid.uuid4() if seq > 1 else first, "party_id": party["id"],
             "action": action, "kind": "late_delivery", "severity": "minor", "points": points,
             "description": f"finding {seq}", "evidence_ref": None,
             "refers_to": first if seq == 3 else None, "recorded_by": None,
             "occurred_at": now + timedelta(seconds=seq),
             "prev_hash": f"{seq - 1:064x}", "hash": f"{seq:064x}"}
            for seq, action, points in ((3, "revoked", 0), (1, "recorded", -10),
                                        (2, "recorded", -10))]
    with db.engine.begin() as connection:
        connection.execute(sa.insert(Party.__table__), [party])
        connection.execute(sa.insert(sa.table("audit_entries", *(
            sa.column(name) for name in audit_rows[0]))), audit_rows)
        if connection.dialect.name == "sqlite":  # uuids as SQLAlchemy's Uuid keeps them there
            rows = [{**row, **{key: row[key].hex for key in ("id", "party_id", "refers_to")
                               if row[key] is not None}} for row in rows]
        connection.execute(sa.insert(chain), rows)

    upgrade()
    db.session.remove()

    seal_log()
    with unit_of_work() as session:
        entries = list(session.scalars(sa.select(CreditEntry).order_by(CreditEntry.seq)))
        logged = session.execute(sa.select(AuditEntry.id, AuditEntry.subject_id).join(
            LogLeaf, LogLeaf.entry_id == AuditEntry.id).order_by(LogLeaf.log_index)).all()
        report = credit_ledger.verify(session, log_verifier())
        findings = credit_ledger.party_findings(session, party["id"])
    assert [(entry.seq, entry.description) for entry in entries] == [
        (3, "finding 1"), (4, "finding 2"), (5, "finding 3")]
    assert logged[2:] == [(entry.seq, str(entry.id)) for entry in entries]
    assert (report.valid, report.entries, report.first_bad_entry) == (True, 3, None)
    assert findings[first].status == "revoked"
    make_member()  # new audit entries take ids after them
    assert db.session.scalar(sa.select(sa.func.max(AuditEntry.id))) > 5

    db.session.remove()
    downgrade(revision="0019")  # back to a chain numbered from 1, each link to the one before
    with db.engine.connect() as connection:
        chained = connection.execute(sa.select(chain).order_by(chain.c.seq)).all()
    upgrade()
    db.session.remove()
    assert [(row.seq, row.description) for row in chained] == [
        (1, "finding 1"), (2, "finding 2"), (3, "finding 3")]
    assert [row.prev_hash for row in chained] == ["0" * 64] + [row.hash for row in chained[:2]]


@pytest.mark.postgres_only
def test_listings_keep_room_on_each_page_for_the_licenses_every_order_updates(app):
    options = db.session.execute(sa.text(
        "SELECT reloptions FROM pg_class WHERE relname = 'listings'")).scalar_one()
    assert "fillfactor=80" in options
