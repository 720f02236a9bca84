"""flask log seal: run the sealer once, now."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from app.log.sealer import seal

log_cli = AppGroup("log", help="The evidence log.")


@log_cli.command("seal")
def seal_now() -> None:
    """Integrate every committed audit entry not yet in the log, and sign a checkpoint."""
    report = seal(current_app.config["LOG_ORIGIN"])
    if report is None:
        click.echo("skipped: another sealer is running")
        return
    root = report.root_hash.hex() if report.root_hash else None
    click.echo(f"sealed={report.sealed} tree_size={report.tree_size} root_hash={root}")
