"""flask log monitor against a live server: 0 on honest growth; 1 on a rollback, a fork, a
checkpoint signed by another key, another origin (the state file left as it was); 2 when the
log cannot be reached."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from app import audit
from app.db import unit_of_work
from app.extensions import db
from app.log.checkpoint import Checkpoint, sign_checkpoint
from app.log.keys import log_signer
from app.log.models import LogCheckpoint, LogLeaf, LogTile
from app.log.note import Signer
from tests.support import ROOT, seal_log

LOG_TABLES = (LogTile.__table__, LogLeaf.__table__, LogCheckpoint.__table__)


@contextmanager
def _serving(wsgi_app: Callable[..., Any]) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    with _serving(app) as url:
        yield url


def _stub_log(note: str, proof: list[str] | None = None) -> Callable[..., Any]:
    """A log that serves this checkpoint note (and this consistency proof) and nothing else."""
    @Request.application
    def serve(request: Request) -> Response:
        if request.path == "/api/v1/log/checkpoint":
            return Response(note, mimetype="text/plain")
        if request.path == "/api/v1/log/proof/consistency" and proof is not None:
            return Response(json.dumps({"first": int(request.args["first"]),
                                        "second": int(request.args["second"]),
                                        "hashes": proof}), mimetype="application/json")
        return Response("not found", status=404)
    return serve


def _grow(count: int = 3) -> Any:
    with unit_of_work() as session:
        for n in range(count):
            audit.record(session, actor_id=None, action="test.grew", subject=f"s-{n}",
                         subject_type="test", details={"n": n})
    return seal_log()


def _monitor(app: Flask, url: str, state: Path, *extra: str) -> Result:
    return app.test_cli_runner().invoke(
        args=["log", "monitor", "--url", url, "--state", str(state), *extra])


def _state(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def _save_log() -> dict[str, list[dict[str, Any]]]:
    with db.engine.connect() as connection:
        return {table.name: [dict(row._mapping) for row in connection.execute(table.select())]
                for table in LOG_TABLES}


def _restore_log(saved: dict[str, list[dict[str, Any]]]) -> None:
    """Put the log tables back as saved, as a restore from an old backup would."""
    with db.engine.begin() as connection:
        postgresql = connection.dialect.name == "postgresql"
        for table in LOG_TABLES:
            if postgresql:  # the append-only triggers stand in the way of a restore
                connection.execute(sa.text(f"ALTER TABLE {table.name} DISABLE TRIGGER USER"))
            connection.execute(table.delete())
            if saved[table.name]:
                connection.execute(table.insert(), saved[table.name])
            if postgresql:
                connection.execute(sa.text(f"ALTER TABLE {table.name} ENABLE TRIGGER USER"))


@dataclass(frozen=True)
class Watched:
    """A sealed log the monitor has seen once: its state file, as it was then."""

    state: Path
    sealed: Any
    before: bytes


@pytest.fixture
def watched(app: Flask, live_server: str, tmp_path: Path) -> Watched:
    state = tmp_path / "state.json"
    sealed = _grow()
    assert _monitor(app, live_server, state).exit_code == 0
    return Watched(state, sealed, state.read_bytes())


def _assert_alarm(result: Result, watched: Watched, word: str) -> None:
    assert result.exit_code == 1, result.output + result.stderr
    assert word in result.stderr
    assert watched.state.read_bytes() == watched.before, "the state is left as it was"


def test_honest_growth_exits_0_and_records_each_checkpoint(
        app: Flask, live_server: str, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    first = _grow()

    result = _monitor(app, live_server, state)

    assert result.exit_code == 0, result.output + result.stderr
    assert "first checkpoint, key trusted" in result.output
    seen = _state(state)
    assert (seen["tree_size"], seen["root_hash"]) == (first.tree_size, first.root_hash.hex())
    assert seen["vkey"] == log_signer().verifier.vkey
    assert seen["origin"] == app.config["LOG_ORIGIN"]

    second = _grow(5)
    result = _monitor(app, live_server, state)

    assert result.exit_code == 0, result.output + result.stderr
    assert f"grew from {first.tree_size}, consistent" in result.output
    seen = _state(state)
    assert (seen["tree_size"], seen["root_hash"]) == (second.tree_size, second.root_hash.hex())
    assert seen["note"].startswith(f"{app.config['LOG_ORIGIN']}\n{second.tree_size}\n")

    result = _monitor(app, live_server, state)
    assert result.exit_code == 0, result.output + result.stderr
    assert "unchanged" in result.output
    assert not list(tmp_path.glob(".state.json.*")), "no temporary file is left behind"


def test_a_rollback_to_an_older_log_exits_1_and_keeps_the_state(
        app: Flask, live_server: str, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    _grow()
    backup = _save_log()
    _grow(4)
    assert _monitor(app, live_server, state).exit_code == 0
    before = state.read_bytes()

    _restore_log(backup)
    result = _monitor(app, live_server, state)

    assert result.exit_code == 1, result.output + result.stderr
    assert "rollback" in result.stderr
    assert state.read_bytes() == before
    assert _monitor(app, live_server, state).exit_code == 1, "the alarm stands on every run"


def test_a_checkpoint_of_the_same_size_with_another_root_is_a_fork(
        app: Flask, watched: Watched) -> None:
    forged = Checkpoint(app.config["LOG_ORIGIN"], watched.sealed.tree_size,
                        secrets.token_bytes(32))

    with _serving(_stub_log(sign_checkpoint(forged, log_signer()))) as fork:
        _assert_alarm(_monitor(app, fork, watched.state), watched, "fork")


def test_a_bigger_tree_that_does_not_extend_the_one_seen_is_a_fork(
        app: Flask, watched: Watched) -> None:
    forged = Checkpoint(app.config["LOG_ORIGIN"], watched.sealed.tree_size + 2,
                        secrets.token_bytes(32))
    proof = [secrets.token_bytes(32).hex() for _ in range(3)]

    for served_proof in (proof, None):  # a proof that fails, and no proof at all (404)
        with _serving(_stub_log(sign_checkpoint(forged, log_signer()), served_proof)) as fork:
            _assert_alarm(_monitor(app, fork, watched.state), watched, "fork")


def test_a_checkpoint_signed_by_another_key_exits_1(
        app: Flask, watched: Watched, tmp_path: Path) -> None:
    impostor = Signer.generate(log_signer().name)
    forged = Checkpoint(app.config["LOG_ORIGIN"], watched.sealed.tree_size,
                        watched.sealed.root_hash)

    with _serving(_stub_log(sign_checkpoint(forged, impostor))) as other_key:
        _assert_alarm(_monitor(app, other_key, watched.state), watched, "not signed by")
        named = _monitor(app, other_key, tmp_path / "named.json", "--vkey",
                         log_signer().verifier.vkey)

    assert named.exit_code == 1, "the key named with --vkey is the one required"
    assert not (tmp_path / "named.json").exists()


def test_a_rotated_key_is_accepted_once_named_with_vkey(
        app: Flask, watched: Watched) -> None:
    rotated = Signer.generate(log_signer().name)
    note = sign_checkpoint(Checkpoint(app.config["LOG_ORIGIN"], watched.sealed.tree_size,
                                      watched.sealed.root_hash), rotated)

    with _serving(_stub_log(note)) as log:
        _assert_alarm(_monitor(app, log, watched.state), watched, "not signed by")
        result = _monitor(app, log, watched.state, "--vkey", rotated.verifier.vkey)

    assert result.exit_code == 0, result.output + result.stderr
    assert _state(watched.state)["vkey"] == rotated.verifier.vkey


def test_another_origin_exits_1(app: Flask, watched: Watched) -> None:
    other = Checkpoint("elsewhere.example/log", watched.sealed.tree_size,
                       watched.sealed.root_hash)

    with _serving(_stub_log(sign_checkpoint(other, log_signer()))) as log:
        _assert_alarm(_monitor(app, log, watched.state), watched, "origin")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_log_exits_2(app: Flask, watched: Watched) -> None:
    result = _monitor(app, f"http://127.0.0.1:{_closed_port()}", watched.state)

    assert result.exit_code == 2, result.output + result.stderr
    assert "not checked" in result.stderr
    assert watched.state.read_bytes() == watched.before


def test_an_error_answer_exits_2(app: Flask, watched: Watched) -> None:
    unavailable = Request.application(lambda request: Response("down", status=503))

    with _serving(unavailable) as log:
        result = _monitor(app, log, watched.state)

    assert result.exit_code == 2, result.output + result.stderr
    assert "HTTP 503" in result.stderr
    assert watched.state.read_bytes() == watched.before


def test_the_command_runs_without_a_database(app: Flask, live_server: str,
                                             tmp_path: Path) -> None:
    _grow()
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("DATABASE_URL", "APP_ENV", "TEST_DATABASE_URL")}
    state = tmp_path / "state.json"

    done = subprocess.run(
        [sys.executable, "-m", "flask", "log", "monitor", "--url", live_server,
         "--state", str(state)], cwd=ROOT, env={**environment, "FLASK_APP": "app"},
        capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    assert _state(state)["vkey"] == log_signer().verifier.vkey
