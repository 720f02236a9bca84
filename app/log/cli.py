"""flask log seal: run the sealer once, now; flask log status: how far behind it is and why;
flask log monitor: check the log from outside; flask log verify-evidence: check a voucher or
certificate offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

import click
from flask import current_app
from flask.cli import AppGroup
from marshmallow import ValidationError

from app.db import unit_of_work
from app.log import monitor
from app.log.document_check import check_document
from app.log.note import Verifier
from app.log.schemas import DocumentSchema
from app.log.sealer import seal
from app.log.status import log_status

log_cli = AppGroup("log", help="The evidence log.")


@log_cli.command("seal")
def seal_now() -> None:
    """Integrate the committed audit entries not yet in the log, one signed checkpoint per
    batch, until a batch is not full."""
    batch_size = current_app.config["LOG_SEAL_BATCH_SIZE"]
    sealed = 0
    while True:
        report = seal(current_app.config["LOG_ORIGIN"], batch_size)
        if report is None:
            click.echo("skipped: another sealer is running")
            return
        sealed += report.sealed
        if report.sealed < batch_size:
            break
    root = report.root_hash.hex() if report.root_hash else None
    click.echo(f"sealed={sealed} tree_size={report.tree_size} root_hash={root}")


@log_cli.command("status")
def status() -> None:
    """How far behind the sealer is: the latest checkpoint's age, the entries waiting, the
    merge delay (commit to integration) of the latest leaves, and on PostgreSQL the oldest
    transaction running in the database, which holds every later entry back."""
    with unit_of_work() as session:
        report = log_status(session)

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}s"

    click.echo(f"tree_size={report.tree_size} checkpoint_age={seconds(report.checkpoint_age)} "
               f"waiting={report.waiting} oldest_waiting={seconds(report.oldest_waiting_age)}")
    target = current_app.config["LOG_MAX_MERGE_DELAY_SECONDS"]
    click.echo(f"merge_delay over the latest {report.recent} leaves: "
               f"p50={seconds(report.delay_p50)} p99={seconds(report.delay_p99)} "
               f"max={seconds(report.delay_max)} (target {target}s)")
    oldest = report.holding_back
    click.echo("oldest transaction: none" if oldest is None else
               f"oldest transaction: pid={oldest.pid} state={oldest.state} "
               f"application={oldest.application or '-'} "
               f"started={oldest.started_at.isoformat() if oldest.started_at else '-'}")


@log_cli.command("monitor")
@click.option("--url", required=True, help="The exchange's base URL.")
@click.option("--state", "state_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="JSON file holding the last checkpoint seen (created on the first run).")
@click.option("--vkey", help="The log's verifier key; without it the key kept in the state "
                             "file, or on the first run the one the log publishes.")
def monitor_log(url: str, state_file: Path, vkey: str | None) -> None:
    """Check the log's latest checkpoint: signed, and consistent with the last one seen.
    Exits 0 on honest growth, 1 on a fork, rollback, bad signature or other origin (the state
    file is then left as it was), 2 when the log could not be checked."""
    status, line = monitor.run(url, state_file, vkey)
    click.echo(line, err=status != monitor.OK)
    raise SystemExit(status)


@log_cli.command("verify-evidence")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--vkey", required=True,
              help="The log's verifier key (GET /log/public-key's vkey), or a file holding it.")
def verify_evidence(file: TextIO, vkey: str) -> None:
    """Check a voucher or certificate saved as JSON, offline (no database, no network):
    signature, inclusion, facts digest. Exits 1 when a check fails."""
    key_file = Path(vkey)
    try:
        verifier = Verifier.from_vkey(key_file.read_text().strip() if key_file.is_file()
                                      else vkey.strip())
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--vkey") from None
    try:
        document = DocumentSchema().load(json.load(file))
    except (ValueError, ValidationError) as error:
        click.echo(f"malformed: {getattr(error, 'messages', error)}", err=True)
        sys.exit(1)
    checks = check_document(document, verifier)
    for check in checks:
        click.echo(f"{check.name}: {'ok' if check.ok else 'FAILED'} ({check.detail})")
    click.echo("consistency: skipped (offline: POST /evidence/verify or flask log monitor "
               "compares the checkpoint with the log's current one)")
    if not all(check.ok for check in checks):
        sys.exit(1)
