"""Migrations: one head, upgrade from empty and back, and models in agreement with them."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from app import MIGRATIONS_DIR, clock
from app.extensions import db
from app.parties.models import Party
from app.parties.names import name_key
from tests.factories import PartyBodyFactory, new_credit_code


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
