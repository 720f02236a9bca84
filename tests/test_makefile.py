"""The Makefile's own decisions, with stand-ins for the PostgreSQL tools on the PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ELSEWHERE = "postgresql://postgres@db.example:5432/theirs"
MAKE = shutil.which("make") or "make"


def stand_ins(directory: Path, *tools: str) -> Path:
    """Commands that only write their arguments to `calls` (psql also answers 1)."""
    for tool in tools:
        script = directory / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{directory}/calls"\necho 1\n')
        script.chmod(0o755)
    return directory / "calls"


def make(*args: str, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Not the make that may run this suite: its MAKEFLAGS would carry its own variables.
    clean = {name: value for name, value in os.environ.items()
             if name not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "TEST_DATABASE_URL")}
    return subprocess.run([MAKE, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**clean, "PATH": path, **env})


@pytest.mark.parametrize("goal", ["test", "fuzz"])
@pytest.mark.parametrize("given", ["command line", "environment"])
def test_a_given_test_database_is_used_and_no_local_database_is_created(tmp_path, goal, given):
    calls = stand_ins(tmp_path, "psql", "createdb")
    path = f"{tmp_path}:{os.environ['PATH']}"

    if given == "command line":
        shown = make("-n", goal, f"TEST_DATABASE_URL={ELSEWHERE}", path=path)
    else:
        shown = make("-n", goal, path=path, TEST_DATABASE_URL=ELSEWHERE)

    assert shown.returncode == 0, shown.stderr
    assert not calls.exists()
    assert 'TEST_DATABASE_URL="${TEST_DATABASE_URL:-}"' in shown.stdout


def test_without_a_test_database_the_local_server_s_dx_test_is_created_and_used(tmp_path):
    calls = stand_ins(tmp_path, "psql", "createdb")

    shown = make("-n", "test", path=f"{tmp_path}:{os.environ['PATH']}")

    assert shown.returncode == 0, shown.stderr
    assert "createdb -h 127.0.0.1 -U postgres dx_test" in calls.read_text().splitlines()
    assert "postgresql://postgres@127.0.0.1:5432/dx_test" in shown.stdout


@pytest.mark.parametrize("goal, missing", [("bench-orders", "wrk"), ("bench", "pgbench"),
                                           ("bench-read", "wrk")])
def test_a_benchmark_without_its_load_generator_fails_at_once_naming_it(tmp_path, goal,
                                                                         missing):
    # A PATH of stand-ins holding the benchmark's other tool, and nothing else.
    stand_ins(tmp_path, *({"wrk", "pgbench"} - {missing}))

    ran = make(goal, path=str(tmp_path), BENCH_DATABASE_URL=ELSEWHERE)

    assert ran.returncode != 0
    assert f"make {goal} needs {missing}, which is not installed" in ran.stderr
    assert "apt-get install wrk" in ran.stderr
    assert ran.stdout == ""  # nothing installed, built or run before
