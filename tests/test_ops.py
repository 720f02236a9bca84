"""Health, readiness, request ids and production configuration."""

from __future__ import annotations

import logging
import threading
from http.client import HTTPConnection

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.log.note import Signer
from app.parties.models import Role
from config import DevelopmentConfig, ProductionConfig
from tests.conftest import make_app
from tests.factories import PartyBodyFactory, make_member


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_the_root_answers_json_linking_the_docs_the_contract_and_the_probes(client):
    response = client.get("/")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    links = response.json["links"]
    assert links == {"docs": "/docs", "openapi": "/openapi.json", "health": "/healthz",
                     "readiness": "/readyz", "api": "/api/v1"}
    # Every link but the API's prefix answers, and the root itself is in the contract.
    for name, link in links.items():
        if name != "api":
            assert client.get(link).status_code == 200, link
    assert "/" in client.get("/openapi.json").json["paths"]


def test_readyz_answers_ok_when_the_database_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_answers_503_problem_when_the_database_is_unreachable(tmp_path):
    app = make_app(f"sqlite:///{tmp_path}/missing-dir/none.db")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "database_unavailable"


def test_every_response_carries_a_request_id_and_echoes_a_valid_one(client):
    assert len(client.get("/healthz").headers["X-Request-ID"]) == 32
    echoed = client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    assert echoed.headers["X-Request-ID"] == "trace-42"
    replaced = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert replaced.headers["X-Request-ID"] != "bad id with spaces"


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_make_run_s_server_logs_each_request_once_and_no_scheduler_chatter(tmp_path):
    """As `make run` starts it: plain logs for a terminal, the scheduler in the web process,
    served by werkzeug."""
    collected = Collected()
    loggers = [logging.getLogger(name) for name in ("apscheduler", "werkzeug", "app.access")]
    for logger in loggers:
        logger.addHandler(collected)
    app = create_app(DevelopmentConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/d.db",
                     LOG_JSON=False, SCHEDULER_IN_WEB=True)
    server = make_server("127.0.0.1", 0, app)
    try:
        serving = threading.Thread(target=server.handle_request)
        serving.start()
        connection = HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
        serving.join(timeout=10)
    finally:
        server.server_close()
        app.extensions["scheduler"].shutdown(wait=False)
        for logger in loggers:
            logger.removeHandler(collected)

    assert [(record.name, record.getMessage()) for record in collected.records
            if record.levelno < logging.WARNING and record.name != "app.access"] == []
    assert [record.getMessage().split()[:3] for record in collected.records
            if record.name == "app.access"] == [["GET", "/healthz", "200"]]


PRODUCTION_SECRET = "a-random-production-secret-of-40-chars!!"
PRODUCTION_LOG_KEY = Signer.generate("exchange.local/log").skey


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "LOG_SIGNING_KEY"])
def test_production_refuses_to_start_without_its_secrets(monkeypatch, missing):
    monkeypatch.setenv("SECRET_KEY", PRODUCTION_SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/exchange")
    monkeypatch.setenv("LOG_SIGNING_KEY", PRODUCTION_LOG_KEY)
    monkeypatch.delenv(missing)
    with pytest.raises(RuntimeError, match=missing):
        create_app(ProductionConfig)


@pytest.mark.parametrize("secret", ["short", "dev-only-not-secret"])
def test_production_refuses_a_weak_or_development_secret(monkeypatch, secret):
    monkeypatch.setenv("SECRET_KEY", secret)
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/exchange")
    monkeypatch.setenv("LOG_SIGNING_KEY", PRODUCTION_LOG_KEY)
    with pytest.raises(RuntimeError, match="SECRET_KEY must be a random value"):
        create_app(ProductionConfig)


def test_production_refuses_stripe_without_its_webhook_secret(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", PRODUCTION_SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/exchange")
    monkeypatch.setenv("LOG_SIGNING_KEY", PRODUCTION_LOG_KEY)
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_x")
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    with pytest.raises(RuntimeError, match="STRIPE_WEBHOOK_SECRET"):
        create_app(ProductionConfig)


@pytest.mark.parametrize("storage", ["ftp://files/artifacts", "s3://", "/srv/artifacts"])
def test_production_refuses_an_artifact_storage_it_cannot_use(monkeypatch, storage):
    monkeypatch.setenv("SECRET_KEY", PRODUCTION_SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/exchange")
    monkeypatch.setenv("LOG_SIGNING_KEY", PRODUCTION_LOG_KEY)
    monkeypatch.setenv("ARTIFACT_STORAGE", storage)
    with pytest.raises(RuntimeError, match="ARTIFACT_STORAGE must be"):
        create_app(ProductionConfig)


def test_production_starts_when_its_secrets_are_set(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", PRODUCTION_SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/exchange")
    monkeypatch.setenv("LOG_SIGNING_KEY", PRODUCTION_LOG_KEY)
    app = create_app(ProductionConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/p.db")
    assert app.config["ENV_NAME"] == "production"
    assert not app.debug


def test_production_answers_with_security_headers_and_no_stack_traces(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", PRODUCTION_SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/exchange")
    monkeypatch.setenv("LOG_SIGNING_KEY", PRODUCTION_LOG_KEY)
    app = create_app(ProductionConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/p.db")
    client = app.test_client()
    answer = client.get("/api/v1/parties/me")
    assert answer.status_code == 401
    for name, value in {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                        "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}.items():
        assert answer.headers[name] == value
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
    # No tables in that database: the failure is answered, and nothing of it leaks out.
    broken = client.post("/api/v1/parties", json=PartyBodyFactory())
    assert broken.status_code == 503
    assert broken.mimetype == "application/problem+json"
    assert "Traceback" not in broken.get_data(as_text=True)
    assert "sqlite" not in broken.get_data(as_text=True).lower()


def test_api_keys_never_reach_the_logs(client, caplog):
    member = make_member(Role.BUYER)
    with caplog.at_level("DEBUG"):
        client.get("/api/v1/parties/me", headers=member.headers)
        client.get("/api/v1/parties/me", headers={"Authorization": "Bearer dx_not_a_key"})
    assert caplog.records
    text = "\n".join(record.getMessage() + str(record.__dict__) for record in caplog.records)
    assert member.key not in text
    assert "dx_not_a_key" not in text


def test_a_production_process_starts_with_the_secrets_in_its_environment(tmp_path):
    """As gunicorn starts it: the environment is set before the configuration is read."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "APP_ENV": "production", "SECRET_KEY": PRODUCTION_SECRET,
           "DATABASE_URL": f"sqlite:///{tmp_path}/p.db", "LOG_SIGNING_KEY": PRODUCTION_LOG_KEY}
    started = subprocess.run([sys.executable, "-c", "from app import create_app; create_app()"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
