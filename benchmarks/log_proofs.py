"""Evidence-log proofs at scale: inclusion proofs over HTTP and POST /evidence/verify on a log
of millions of leaves, and full verification's leaves per second.

    python -m benchmarks.log_proofs --database-url URL [--leaves 10000000] [--requests 2000]
                                    [--verify-leaves 100000] [--port 8642]

Needs a scratch PostgreSQL database (its schema is dropped and rebuilt). The log is built
fast, not through the service: audit entries are generated in bulk, their leaf hashes and
the tiles computed with the project's own code (`app.audit.leaf_bytes`, `app.log.merkle`,
`app.log.tiles`), everything COPY'd in, and a checkpoint signed with the project's signer.
Then a real market is seeded through the API and a registration certificate issued, whose
facts the service logs and seals on top of the bulk leaves. gunicorn (production settings)
serves the inclusion proofs of random leaves of the signed tree and verifies the
certificate, one request at a time; the table shows p50 / p99 beside GET /healthz measured
the same way. Full verification (`flask audit verify`'s function) runs on a log of
--verify-leaves leaves, built the same way, beside reading the same rows alone.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade

from app.audit import digest, leaf_bytes_of
from app.db import unit_of_work
from app.extensions import db
from app.log.checkpoint import Checkpoint, sign_checkpoint
from app.log.keys import log_signer, log_verifier
from app.log.merkle import RightEdge, leaf_hash
from app.log.models import latest_checkpoint
from app.log.note import Signer
from app.log.tiles import TileBuilder, TileHashReader
from app.log.verification import _LEAVES, verify_log
from benchmarks.listings_search import percentile, scratch_app
from benchmarks.order_placement import PORT, start_gunicorn, stop

CHUNK = 1 << 16  # leaves generated, hashed and copied at a time (a multiple of 256)
DETAILS = {"bulk": True}


def libpq(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(False)


def _copy(cursor: psycopg.Cursor, table: str, columns: str, rows: Iterator[str]) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for line in rows:
            buffer.write(line)
            if buffer.tell() > 1 << 22:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def scratch_log_app(database_url: str, signing_key: str) -> Flask:
    """The app on the scratch database, migrated, signing with `signing_key`."""
    app = scratch_app(database_url)
    app.config["LOG_SIGNING_KEY"] = signing_key
    with app.app_context():
        upgrade()
        db.session.remove()
        db.engine.dispose()
    return app


def build_log(app: Flask, leaves: int) -> float:
    """`leaves` audit entries, their leaves and tiles and a signed checkpoint, bulk-loaded
    with the project's hashing and tiling; the seconds it took."""
    started = time.perf_counter()
    url = libpq(app.config["SQLALCHEMY_DATABASE_URI"])
    payload = digest(DETAILS)
    details = json.dumps(DETAILS)
    at = datetime.now(UTC) - timedelta(days=1)
    tiles = TileBuilder(keep_leaf_tiles=True)
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        # Secondary indexes are built once the rows are in, as a restore would.
        indexes = cursor.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE t.relname IN ('audit_entries', 'log_leaves') "
            "AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.oid)").fetchall()
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")
        # Rows made consistent by construction: no per-row foreign-key checks.
        cursor.execute("SET LOCAL session_replication_role = replica")
        xid = cursor.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
        assert xid is not None
        stamp = at.isoformat()
        for start in range(0, leaves, CHUNK):
            numbers = range(start, min(start + CHUNK, leaves))
            for n in numbers:
                tiles.add(leaf_hash(leaf_bytes_of(n + 1, at, None, "benchmark.appended",
                                                  "benchmark", str(n), payload)))
            _copy(cursor, "audit_entries", "id, occurred_at, action, subject_type, subject_id, "
                  "details, payload_digest",
                  (f"{n + 1}\t{stamp}\tbenchmark.appended\tbenchmark\t{n}\t{details}\t"
                   f"{payload}\n" for n in numbers))
            _copy(cursor, "log_leaves", "log_index, entry_id, integrated_at",
                  (f"{n}\t{n + 1}\t{stamp}\n" for n in numbers))
            # Full tiles of leaves are final: written now, so memory holds none of them.
            assert tiles.leaf_tiles is not None
            _copy(cursor, "log_tiles", "level, index, hashes",
                  (f"{tile.level}\t{tile.index}\t\\\\x{data.hex()}\n"
                   for tile, data in tiles.leaf_tiles))
            tiles.leaf_tiles.clear()
        upper, store = tiles.finish()
        _copy(cursor, "log_tiles", "level, index, hashes",
              (f"{tile.level}\t{tile.index}\t\\\\x{data.hex()}\n"
               for tile, data in {**upper, **store.tiles}.items()))
        edge = RightEdge.read(TileHashReader(store), leaves)
        cursor.execute("SELECT setval('audit_entries_id_seq', %s)", [leaves])
        for _, definition in indexes:
            cursor.execute(definition)
        with app.app_context():
            note = sign_checkpoint(Checkpoint(app.config["LOG_ORIGIN"], edge.size,
                                              edge.root()), log_signer())
        # The sealer resumes above this transaction (every bulk entry carries its id).
        cursor.execute("INSERT INTO log_checkpoints (tree_size, root_hash, signed_note, "
                       "created_at, xmin_watermark) VALUES (%s, %s, %s, %s, %s)",
                       [edge.size, edge.root(), note, datetime.now(UTC), xid[0] + 1])
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE audit_entries, log_leaves, log_tiles")
    return time.perf_counter() - started


def certificate_document(app: Flask) -> dict[str, Any]:
    """A listed product's registration certificate, issued (and sealed) by the service."""
    from benchmarks.order_placement import seed

    listing_id, auth = seed(app)
    response = app.test_client().get(f"/api/v1/listings/{listing_id}/certificate",
                                     headers={"Authorization": auth})
    assert response.status_code == 200 and response.json, response.json
    document: dict[str, Any] = response.json
    return document


@dataclass
class ProofFigures:
    leaves: int  # the signed tree's size
    build_seconds: float
    requests: int
    inclusion: list[float]  # ms
    verify: list[float]  # ms
    healthz: list[float]  # ms
    verified: bool  # every POST /evidence/verify said valid
    verify_leaves: int
    verify_seconds: float
    verify_valid: bool
    read_seconds: float  # the same rows read alone


def _timed(connection: HTTPConnection, method: str, path: str,
           body: bytes | None = None) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    connection.request(method, path, body=body, headers={
        "Accept": "application/json", **({"Content-Type": "application/json"} if body else {})})
    response = connection.getresponse()
    data = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status == 200, (path, response.status, data[:300])
    return elapsed, json.loads(data) if data.startswith(b"{") else {}


def serve_requests(url: str, document: dict[str, Any], requests: int, port: int,
                   signing_key: str
                   ) -> tuple[int, list[float], list[float], list[float], bool]:
    """The signed tree's size, then inclusion proofs of random leaves, the certificate
    verified, and GET /healthz, one request at a time in alternation, in milliseconds."""
    server = start_gunicorn(url, 2, port, signing_key)
    rng = random.Random(15)
    try:
        connection = HTTPConnection("127.0.0.1", port, timeout=30)
        _, checkpoint = _timed(connection, "GET", "/api/v1/log/checkpoint")
        size = checkpoint["tree_size"]
        body = json.dumps(document).encode()
        for n in range(50):  # warm-up: connections, caches
            _timed(connection, "GET", f"/api/v1/log/proof/inclusion?index={n}&tree_size={size}")
            _timed(connection, "POST", "/api/v1/evidence/verify", body)
        inclusion, verify, healthz, verified = [], [], [], True
        for _ in range(requests):
            index = rng.randrange(size)
            inclusion.append(_timed(connection, "GET", "/api/v1/log/proof/inclusion"
                                    f"?index={index}&tree_size={size}")[0])
            elapsed, answer = _timed(connection, "POST", "/api/v1/evidence/verify", body)
            verify.append(elapsed)
            verified = verified and bool(answer.get("valid"))
            healthz.append(_timed(connection, "GET", "/healthz")[0])
        connection.close()
    finally:
        stop(server)
    return size, inclusion, verify, healthz, verified


def full_verification(database_url: str, leaves: int) -> tuple[int, float, bool, float]:
    """Full verification of a bulk-built log of `leaves` leaves: (leaves, seconds, valid,
    seconds to read the same rows alone)."""
    app = scratch_log_app(database_url, Signer.generate("exchange.local/log").skey)
    build_log(app, leaves)
    with app.app_context(), unit_of_work() as session:
        started = time.perf_counter()
        for _ in session.connection().execution_options(yield_per=5000).execute(_LEAVES):
            pass
        read = time.perf_counter() - started
    with app.app_context(), unit_of_work() as session:
        started = time.perf_counter()
        report = verify_log(session, log_verifier())
        seconds = time.perf_counter() - started
    with app.app_context():
        db.engine.dispose()
    return report.entries, seconds, report.valid, read


def built_log(database_url: str, leaves: int, state: Path | None) -> tuple[str, float, dict]:
    """The log of `leaves` leaves on the database, built now, or kept from a run that wrote
    `state` (its signing key and certificate) when the database still holds that log: the
    signing key, the seconds the build took, and the certificate."""
    if state is not None and state.exists():
        kept = json.loads(state.read_text())
        with psycopg.connect(libpq(database_url)) as connection:
            row = connection.execute("SELECT max(tree_size) FROM log_checkpoints").fetchone()
        if kept["leaves"] == leaves and row and row[0] == kept["tree_size"]:
            return kept["signing_key"], kept["build_seconds"], kept["document"]
    signing_key = Signer.generate("exchange.local/log").skey
    app = scratch_log_app(database_url, signing_key)
    build_seconds = build_log(app, leaves)
    document = certificate_document(app)
    with app.app_context():
        size = latest_checkpoint(db.session()).tree_size  # type: ignore[union-attr]
        db.session.remove()
        db.engine.dispose()
    if state is not None:
        state.write_text(json.dumps({"leaves": leaves, "tree_size": size,
                                     "signing_key": signing_key, "document": document,
                                     "build_seconds": build_seconds}))
    return signing_key, build_seconds, document


def measure(database_url: str, *, leaves: int = 10_000_000, requests: int = 2000,
            verify_leaves: int = 100_000, port: int = PORT,
            state: Path | None = None) -> ProofFigures:
    """Full verification on a log of `verify_leaves` (0: none), then the proofs on a log of
    `leaves`."""
    checked, verify_seconds, verify_valid, read_seconds = full_verification(
        database_url, verify_leaves) if verify_leaves else (0, 0.0, True, 0.0)
    signing_key, build_seconds, document = built_log(database_url, leaves, state)
    url = libpq(database_url)
    size, inclusion, verify, healthz, verified = serve_requests(url, document, requests, port,
                                                                signing_key)
    return ProofFigures(size, build_seconds,
                        requests, inclusion, verify, healthz, verified, checked,
                        verify_seconds, verify_valid, read_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--leaves", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--verify-leaves", type=int, default=100_000)
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument("--state", type=Path,
                        help="keep the built log's key and certificate here, and serve the log "
                             "a run left in the database instead of building it again")
    args = parser.parse_args()
    figures = measure(args.database_url, leaves=args.leaves, requests=args.requests,
                      verify_leaves=args.verify_leaves, port=args.port, state=args.state)
    print(f"log of {figures.leaves:,} leaves, built in {figures.build_seconds:,.0f} s; "
          f"{figures.requests:,} requests of each kind, one at a time")
    for name, values in (("GET /log/proof/inclusion", figures.inclusion),
                         ("POST /evidence/verify", figures.verify),
                         ("GET /healthz (baseline)", figures.healthz)):
        print(f"{name:<28} p50 {statistics.median(values):6.2f} ms  "
              f"p99 {percentile(values, 0.99):6.2f} ms")
    print(f"certificate verified valid every time: {figures.verified}")
    if not figures.verify_leaves:
        return
    print(f"full verification: {figures.verify_leaves / figures.verify_seconds:,.0f} leaves/s "
          f"({figures.verify_leaves:,} leaves, valid={figures.verify_valid}); reading the "
          f"same rows alone {figures.verify_leaves / figures.read_seconds:,.0f} rows/s")


if __name__ == "__main__":
    main()
