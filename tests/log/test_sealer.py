"""The sealer: committed entries integrated exactly once, in a deterministic order, by one
sealer at a time, and a log that survives a sealer killed mid-batch."""

from __future__ import annotations

import itertools
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from app import audit
from app.audit import AuditEntry
from app.db import unit_of_work
from app.extensions import db
from app.locks import exclusive_lock
from app.log import sealer
from app.log.checkpoint import open_checkpoint
from app.log.keys import generated_signer, log_verifier
from app.log.merkle import consistency_proof, verify_consistency
from app.log.models import DatabaseTiles, LogCheckpoint, LogLeaf, LogTile
from app.log.tiles import TileHashReader
from app.log.verification import verify_log
from app.scheduler import run_job
from tests.support import flask, seal_log


def _write(session: Session, action: str, count: int = 1) -> None:
    for n in range(count):
        audit.record(session, actor_id=None, action=action, subject=f"s-{n}",
                     subject_type="test", details={"n": n})


def _write_committed(action: str, count: int = 1) -> None:
    with unit_of_work() as session:
        _write(session, action, count)


def _leaves() -> list[tuple[int, int, int | None]]:
    """(log index, entry id, entry txid) of every leaf, in log order."""
    with db.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(
            sa.select(LogLeaf.log_index, LogLeaf.entry_id, AuditEntry.txid)
            .join(AuditEntry, AuditEntry.id == LogLeaf.entry_id).order_by(LogLeaf.log_index))]


def _checkpoints() -> list[LogCheckpoint]:
    with unit_of_work() as session:
        checkpoints = list(session.scalars(sa.select(LogCheckpoint)
                                           .order_by(LogCheckpoint.tree_size)))
        session.expunge_all()
    return checkpoints


def _verify():
    with unit_of_work() as session:
        return verify_log(session, log_verifier())


def _until_it_has_a_batch(run: Callable[[], Any],
                          done: Callable[[Any], bool] = lambda report: report.sealed > 0) -> Any:
    """Run a sealer until it finds a batch: on PostgreSQL a transaction open elsewhere in the
    cluster holds the watermark back for a while."""
    deadline = time.monotonic() + 60
    while not done(result := run()):
        assert time.monotonic() < deadline, "no batch to seal within 60 s"
        time.sleep(0.1)
    return result


def _assert_consistent(first: LogCheckpoint, second: LogCheckpoint) -> None:
    with unit_of_work() as session:
        proof = consistency_proof(TileHashReader(DatabaseTiles(session)), first.tree_size,
                                  second.tree_size)
    assert verify_consistency(first.tree_size, second.tree_size, first.root_hash,
                              second.root_hash, proof)


def test_a_batch_is_appended_with_a_checkpoint_signed_by_the_log_key(app):
    _write_committed("test.written", 3)
    report = seal_log()
    assert (report.sealed, report.tree_size) == (3, 3)
    (checkpoint,) = _checkpoints()
    signed = open_checkpoint(checkpoint.signed_note, log_verifier())
    assert (signed.origin, signed.tree_size, signed.root_hash) == (
        app.config["LOG_ORIGIN"], 3, report.root_hash)
    assert [entry_id for _, entry_id, _ in _leaves()] == [1, 2, 3]
    assert _verify().valid


def test_nothing_committed_since_the_last_batch_signs_no_checkpoint(app):
    _write_committed("test.written")
    seal_log()
    assert seal_log().sealed == 0
    assert len(_checkpoints()) == 1


def test_each_batch_extends_the_previous_checkpoint_consistently(app):
    for batch in range(1, 6):
        _write_committed("test.written", batch * 7)
        seal_log()
    checkpoints = _checkpoints()
    assert [c.tree_size for c in checkpoints] == [7, 21, 42, 70, 105]
    for first, second in itertools.pairwise(checkpoints):
        _assert_consistent(first, second)
    assert _verify().valid


def test_a_backlog_is_sealed_in_batches_of_the_batch_size_in_order(app):
    _write_committed("test.written", 25)
    sizes = []
    while len(sizes) < 3 or sizes[-1] < 25:
        report = _until_it_has_a_batch(lambda: sealer.seal(app.config["LOG_ORIGIN"], 10))
        sizes.append(report.tree_size)
    assert sizes == [10, 20, 25]
    assert [entry_id for _, entry_id, _ in _leaves()] == list(range(1, 26))
    checkpoints = _checkpoints()
    for first, second in itertools.pairwise(checkpoints):
        _assert_consistent(first, second)
    assert _verify().valid


def test_flask_log_seal_seals_a_backlog_batch_after_batch(app):
    _write_committed("test.written", 25)
    app.config["LOG_SEAL_BATCH_SIZE"] = 10
    try:
        sealed = app.test_cli_runner().invoke(args=["log", "seal"])
        assert sealed.exit_code == 0, sealed.output
        seal_log()  # on PostgreSQL, what a transaction elsewhere in the cluster held back
    finally:
        app.config["LOG_SEAL_BATCH_SIZE"] = 10_000
    assert [c.tree_size for c in _checkpoints()][-1] == 25
    assert len(_checkpoints()) >= 3


def test_a_second_sealer_does_nothing_while_one_holds_the_lock(app):
    _write_committed("test.written")
    with exclusive_lock("log-sealer", sealer._ADVISORY_KEY, wait_seconds=0):
        assert sealer.seal(app.config["LOG_ORIGIN"]) is None
    assert _leaves() == []
    assert seal_log().sealed == 1


def test_the_sealer_job_seals_under_its_lease(app: Flask):
    _write_committed("test.written", 2)
    assert run_job(app, "seal_log")
    seal_log()
    assert len(_leaves()) == 2


@pytest.mark.postgres_only
def test_an_entry_committed_late_with_a_smaller_id_is_integrated_once_in_txid_order(app: Flask):
    """The trap of "ids above the last one sealed": an id is drawn at insert, not at commit."""
    late_inserted = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def late_writer() -> None:
        try:
            with app.app_context(), unit_of_work() as session:
                _write(session, "test.late")
                session.flush()
                audit._write_pending_entries(session)  # the entry's row, id drawn, not committed
                session.flush()
                late_inserted.set()
                assert release.wait(60)
        except BaseException as error:
            errors.append(error)
            late_inserted.set()

    writer = threading.Thread(target=late_writer)
    writer.start()
    assert late_inserted.wait(60)
    _write_committed("test.early", 3)  # larger ids, committed first
    report = sealer.seal(app.config["LOG_ORIGIN"])
    # The open transaction holds the watermark: nothing written after it began is taken.
    assert report is not None and report.sealed == 0
    release.set()
    writer.join(60)
    assert not errors
    seal_log()

    leaves = _leaves()
    with db.engine.connect() as connection:
        entries = connection.execute(sa.select(AuditEntry.id, AuditEntry.txid, AuditEntry.action)
                                     .order_by(AuditEntry.id)).all()
    assert entries[0].action == "test.late"  # the smallest id, committed last
    assert [entry_id for _, entry_id, _ in leaves] == [
        entry.id for entry in sorted(entries, key=lambda e: (e.txid, e.id))]
    assert leaves[0][1] == entries[0].id
    assert _verify().valid


@pytest.mark.postgres_only
def test_entries_of_concurrent_writers_are_all_integrated_exactly_once_in_txid_order(
        app: Flask):
    writers, transactions, per_transaction = 6, 8, 3
    start = threading.Barrier(writers + 1)
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with app.app_context():
                start.wait()
                for _ in range(transactions):
                    _write_committed("test.concurrent", per_transaction)
        except BaseException as error:
            errors.append(error)

    def seal_meanwhile() -> None:
        try:
            with app.app_context():
                start.wait()
                while not done.is_set():  # small batches: ranges cut short and resumed
                    sealer.seal(app.config["LOG_ORIGIN"], batch_size=7)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write) for _ in range(writers)]
    sealing = threading.Thread(target=seal_meanwhile)
    for thread in [*threads, sealing]:
        thread.start()
    for thread in threads:
        thread.join(120)
    done.set()
    sealing.join(120)
    assert not errors
    seal_log()

    leaves = _leaves()
    expected = writers * transactions * per_transaction
    assert [index for index, _, _ in leaves] == list(range(expected))
    assert sorted(entry_id for _, entry_id, _ in leaves) == list(range(1, expected + 1))
    checkpoints = _checkpoints()
    assert len(checkpoints) >= 1
    # Within each batch the order is (txid, id); batches follow one another in txid.
    bounds = [0] + [c.tree_size for c in checkpoints]
    for begin, end in itertools.pairwise(bounds):
        batch = leaves[begin:end]
        assert [(txid, entry_id) for _, entry_id, txid in batch] == sorted(
            (txid, entry_id) for _, entry_id, txid in batch)
    for first, second in itertools.pairwise(checkpoints):
        _assert_consistent(first, second)
    assert _verify().valid


def test_a_sealer_that_fails_between_its_writes_leaves_the_log_as_it_was(app, monkeypatch):
    _write_committed("test.first", 5)
    seal_log()
    _write_committed("test.second", 4)
    (before,) = _checkpoints()

    def fail(point: str) -> None:
        if point == "seal.leaves":
            raise RuntimeError("killed between the leaves and the checkpoint")

    monkeypatch.setattr(sealer, "crash_point", fail)
    with pytest.raises(RuntimeError):
        _until_it_has_a_batch(lambda: sealer.seal(app.config["LOG_ORIGIN"]))
    monkeypatch.undo()
    assert _checkpoints()[-1].tree_size == before.tree_size
    assert len(_leaves()) == 5
    assert _verify().valid

    seal_log()
    after = _checkpoints()[-1]
    assert after.tree_size == 9
    _assert_consistent(before, after)
    assert _verify().valid


@pytest.mark.parametrize("point", ["seal.tiles", "seal.leaves", "seal.checkpoint"])
def test_a_sealer_process_killed_mid_batch_leaves_a_log_the_next_run_extends(app, point):
    _write_committed("test.first", 300)  # more than one tile
    seal_log()
    _write_committed("test.second", 20)
    (before,) = _checkpoints()

    crashed = _until_it_has_a_batch(lambda: flask(app, "log", "seal", CRASH_AT=f"{point}:1"),
                                    done=lambda run: run.returncode != 0)
    assert crashed.returncode == -9, crashed.stderr  # SIGKILL
    assert [c.tree_size for c in _checkpoints()] == [300]
    assert _verify().valid

    resumed = flask(app, "log", "seal")
    assert resumed.returncode == 0, resumed.stderr
    seal_log()
    after = _checkpoints()[-1]
    assert after.tree_size == 320
    _assert_consistent(before, after)
    assert _verify().valid


def test_the_sealer_refuses_to_extend_a_tree_that_is_not_its_checkpoints(app):
    _write_committed("test.written", 3)
    seal_log()
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(sa.update(LogTile.__table__).values(hashes=b"\x00" * 96))
    _write_committed("test.written")
    with pytest.raises(sealer.LogInconsistent):
        sealer.seal(app.config["LOG_ORIGIN"])
    assert len(_leaves()) == 3


def test_a_generated_signing_key_is_private_to_its_owner_and_read_again(tmp_path: Path):
    path = tmp_path / "instance" / "log-signing.key"
    signer = generated_signer(path, "exchange.local/log")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert generated_signer(path, "exchange.local/log").verifier == signer.verifier
    assert path.read_text().startswith("PRIVATE+KEY+exchange.local/log+")


def test_a_configured_signing_key_signs_the_checkpoints(app):
    configured = generated_signer(Path(app.instance_path) / "other.key", "exchange.local/log")
    try:
        app.config["LOG_SIGNING_KEY"] = configured.skey
        app.extensions.pop("log_signer", None)
        _write_committed("test.written")
        seal_log()
        (checkpoint,) = _checkpoints()
        assert open_checkpoint(checkpoint.signed_note, configured.verifier).tree_size == 1
        assert log_verifier() == configured.verifier
    finally:
        app.config["LOG_SIGNING_KEY"] = None
        app.extensions.pop("log_signer", None)
        (Path(app.instance_path) / "other.key").unlink()


def test_a_hash_appended_to_a_tile_behind_the_service_fails_verification(app):
    """The only-grow trigger lets a tile grow: a hash no leaf accounts for must still fail."""
    _write_committed("test.written", 5)
    seal_log()
    assert _verify().valid
    tiles = LogTile.__table__.c
    with db.engine.begin() as connection:
        stored = connection.scalar(sa.select(tiles.hashes).where(tiles.level == 0))
        connection.execute(sa.update(LogTile.__table__).where(tiles.level == 0)
                           .values(hashes=bytes(stored) + b"\x01" * 32))
    report = _verify()
    assert (report.valid, report.entries, report.first_bad_entry) == (False, 5, None)
    _write_committed("test.written")
    with pytest.raises(sealer.LogInconsistent):  # it would file the new leaf after the forgery
        _until_it_has_a_batch(lambda: sealer.seal(app.config["LOG_ORIGIN"]))
    assert len(_leaves()) == 5


def test_a_tile_above_the_leaves_changed_behind_the_service_fails_verification(app):
    _write_committed("test.written", 300)  # a tile of level 1 holds the first 256 leaves' root
    seal_log()
    assert _verify().valid
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        connection.execute(sa.update(LogTile.__table__)
                           .where(LogTile.__table__.c.level == 1)
                           .values(hashes=b"\x01" * 32))
    report = _verify()
    assert (report.valid, report.entries, report.first_bad_entry) == (False, 300, None)


def test_a_running_transactions_32_bit_id_is_widened_across_an_epoch_boundary():
    epoch = 7 << 32
    assert sealer._widen(100, epoch + 200) == epoch + 100
    assert sealer._widen(2**32 - 50, epoch + 20) == epoch - 50  # begun before the wrap
    assert sealer._widen(300, epoch + 200) == epoch + 300  # begun after `near` was read
    assert sealer._widen(10, epoch + 2**32 - 5) == epoch + 2**32 + 10


def _other_database_url() -> sa.URL:
    return db.engine.url.set(database="postgres")


@pytest.mark.postgres_only
def test_a_transaction_open_in_another_database_does_not_hold_the_sealer_back(app: Flask):
    other = sa.create_engine(_other_database_url())
    try:
        with other.connect() as connection:
            connection.execute(sa.text("SELECT pg_current_xact_id()"))  # an id, held open
            _write_committed("test.meanwhile", 3)
            report = sealer.seal(app.config["LOG_ORIGIN"])
            assert report is not None and report.sealed == 3
            connection.rollback()
    finally:
        other.dispose()


@pytest.mark.postgres_only
def test_a_transaction_open_in_this_database_holds_the_sealer_back_and_is_named(app: Flask):
    with db.engine.connect() as connection:
        connection.execute(sa.text("SELECT pg_current_xact_id()"))
        pid = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        _write_committed("test.held", 2)
        report = sealer.seal(app.config["LOG_ORIGIN"])
        assert report is not None and report.sealed == 0
        status = app.test_cli_runner().invoke(args=["log", "status"])
        assert status.exit_code == 0, status.output
        assert "waiting=2" in status.stdout
        assert f"oldest transaction: pid={pid} state=idle in transaction" in status.stdout
        connection.rollback()
    assert seal_log().sealed == 2


@pytest.mark.postgres_only
def test_the_services_sessions_end_a_transaction_left_idle(app: Flask):
    with db.engine.connect() as connection:
        milliseconds = connection.execute(sa.text(
            "SELECT setting FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout'"))
        assert int(milliseconds.scalar_one()) == \
            app.config["DATABASE_IDLE_IN_TRANSACTION_SECONDS"] * 1000 > 0


def test_flask_log_status_shows_the_merge_delay_of_the_latest_leaves(app: Flask):
    _write_committed("test.status", 4)
    waiting = app.test_cli_runner().invoke(args=["log", "status"])
    assert waiting.exit_code == 0, waiting.output
    assert "tree_size=0 checkpoint_age=- waiting=4" in waiting.stdout
    seal_log()

    status = app.test_cli_runner().invoke(args=["log", "status"])

    assert status.exit_code == 0, status.output
    assert "tree_size=4 " in status.stdout and " waiting=0 oldest_waiting=-" in status.stdout
    line = next(line for line in status.stdout.splitlines() if line.startswith("merge_delay"))
    assert line.startswith("merge_delay over the latest 4 leaves: p50=")
    p99 = float(line.split("p99=")[1].split("s ")[0])
    assert 0 <= p99 < 60
