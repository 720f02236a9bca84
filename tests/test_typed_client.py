"""A client generated from /openapi.json works, typed: openapi-python-client generates it (no
network: from the document written to a file), mypy --strict checks a short trade written
against it (tests/typed_client_flow.py), and the trade runs against a live server."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from app.parties.models import Role
from tests.conftest import make_app
from tests.factories import make_member, new_credit_code

PACKAGE = "exchange_client"
FLOW = Path(__file__).with_name("typed_client_flow.py")


def _run(*command: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the generated package and a copy of the flow beside it."""
    root = tmp_path_factory.mktemp("typed-client")
    document = make_app("sqlite://").test_client().get("/openapi.json").get_json()
    (root / "openapi.json").write_text(json.dumps(document))
    (root / "config.json").write_text(json.dumps({"post_hooks": []}))
    _run(sys.executable, "-m", "openapi_python_client", "generate", "--path", "openapi.json",
         "--meta", "none", "--output-path", PACKAGE, "--config", "config.json", cwd=root)
    shutil.copy(FLOW, root / FLOW.name)
    return root


def test_the_trade_type_checks_against_the_generated_client(generated: Path) -> None:
    # Errors in the generated package itself are its authors' (silent); the flow's are ours.
    output = _run(sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
                  "--no-incremental", FLOW.name, cwd=generated)
    assert "Success: no issues found" in output


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def test_the_trade_runs_against_a_live_server(generated: Path, live_server: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    operator = make_member(Role.OPERATOR)
    monkeypatch.syspath_prepend(str(generated))
    flow = importlib.import_module(FLOW.stem)

    outcome = flow.trade(live_server, operator.key, (new_credit_code(), new_credit_code()))

    assert outcome.order.total_amount == 2 * flow.UNIT_PRICE
    assert outcome.order.listing_id == outcome.listing.id
