"""Migrations: one head, upgrade from empty and back, and models in agreement with them."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from app import MIGRATIONS_DIR
from app.extensions import db


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
