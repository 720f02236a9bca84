"""flask log seal: run the sealer once, now."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from app.log.sealer import seal

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
