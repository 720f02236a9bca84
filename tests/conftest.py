"""Test fixtures: every database test runs on SQLite and, when configured, on PostgreSQL.

Set TEST_DATABASE_URL to a scratch PostgreSQL database (its schema is dropped and rebuilt)
to add the PostgreSQL runs; REQUIRE_POSTGRES=1 turns a missing or unreachable database into
a failure instead of leaving those runs out. Tests marked `postgres_only` (concurrency,
triggers) run on PostgreSQL alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from app import clock, create_app
from app.api import Blueprint
from app.extensions import db
from config import TestingConfig
from tests.orders.factories import Market
from tests.storage import S3_ENV, Store, moto_server, new_bucket

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL")
REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"


POSTGRES_RUNS = bool(POSTGRES_URL or REQUIRE_POSTGRES)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        postgres_only = metafunc.definition.get_closest_marker("postgres_only") is not None
        backends = ["postgresql"] if postgres_only else ["sqlite", "postgresql"]
        metafunc.parametrize("backend", backends, indirect=True, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a PostgreSQL database (and not required), its runs are left out, not skipped."""
    if POSTGRES_RUNS:
        return
    left_out = [item for item in items if _on_postgres(item)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not _on_postgres(item)]


def _on_postgres(item: pytest.Item) -> bool:
    # By parameter, not by test id alone: other parameters may come first in an id
    # (test_fuzz's are `[GET /path][buyer-postgresql]`).
    callspec = getattr(item, "callspec", None)
    return "[postgresql" in item.nodeid or (
        callspec is not None and callspec.params.get("backend") == "postgresql")


def pytest_report_header() -> str:
    if POSTGRES_URL:
        return f"databases: sqlite, postgresql ({sa.make_url(POSTGRES_URL).database})"
    return "databases: sqlite only (set TEST_DATABASE_URL to add the PostgreSQL runs)"


def _postgres_url() -> str:
    if not POSTGRES_URL:
        pytest.fail("REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")
    url = sa.make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("DROP SCHEMA public CASCADE"))
            connection.execute(sa.text("CREATE SCHEMA public"))
    except sa.exc.OperationalError as error:
        pytest.fail(f"PostgreSQL at {url.render_as_string()} is not reachable: {error}")
    finally:
        engine.dispose()
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The database URL of this run's backend, with an empty schema."""
    if request.param == "postgresql":
        return _postgres_url()
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"


def make_app(database_url: str, **overrides: object) -> Flask:
    return create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=database_url, **overrides)


@contextmanager
def app_with_blueprints(database_url: str, *blueprints: Blueprint) -> Iterator[Flask]:
    """The application plus test-only routes (registered before its first request)."""
    app = make_app(database_url)
    for blueprint in blueprints:
        app.extensions["api"].register_blueprint(blueprint)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="session")
def migrated_app(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One application per backend, its database built by the migrations (not create_all),
    its artifacts in a directory of the session's."""
    app = make_app(backend, ARTIFACT_STORAGE=f"file://{tmp_path_factory.mktemp('artifacts')}")
    with app.app_context():
        upgrade()
        db.session.remove()
    yield app
    with app.app_context():
        db.engine.dispose()


def empty_tables(app: Flask) -> None:
    tables = [table.name for table in reversed(db.metadata.sorted_tables)]
    with app.app_context(), db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(sa.text(f"DELETE FROM {table}"))


@pytest.fixture
def app(migrated_app: Flask) -> Iterator[Flask]:
    """The application inside an app context; tables emptied and the clock reset afterwards."""
    with migrated_app.app_context():
        yield migrated_app
        db.session.remove()
    empty_tables(migrated_app)
    clock.reset()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def dialect(app: Flask) -> str:
    return db.engine.dialect.name


@pytest.fixture
def market(app: Flask, client: FlaskClient) -> Market:
    """A merchant, a buyer, an operator and a regulator on the client (modules that need
    another market define their own `market`)."""
    return Market.open(app, client)


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone S3 server on a free loopback port, started for the session (when a
    test first asks for it) and stopped after it."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


def _store(kind: str, request: pytest.FixtureRequest, app: Flask, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Store:
    if kind == "filesystem":
        store = Store(kind, f"file://{tmp_path / 'artifacts'}", root=tmp_path / "artifacts")
    else:
        endpoint_url = request.getfixturevalue("moto_url")
        for name, value in S3_ENV.items():
            monkeypatch.setenv(name, value)
        store = Store(kind, f"s3://{new_bucket(endpoint_url)}", endpoint_url=endpoint_url)
    monkeypatch.setitem(app.config, "ARTIFACT_STORAGE", store.url)
    monkeypatch.setitem(app.config, "S3_ENDPOINT_URL", store.endpoint_url)
    return store


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, app: Flask, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Store:
    """The application's artifacts in a directory of the test's, or in a bucket of its own on
    moto's S3 server: a test that takes this fixture runs against both stores."""
    return _store(request.param, request, app, tmp_path, monkeypatch)


@pytest.fixture
def file_store(request: pytest.FixtureRequest, app: Flask, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Store:
    """The application's artifacts in a directory of the test's (the filesystem store)."""
    return _store("filesystem", request, app, tmp_path, monkeypatch)
