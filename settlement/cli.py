"""flask settlement run / verify."""

from __future__ import annotations

import sys
from datetime import datetime

import click
from flask.cli import AppGroup

from app import clock
from app.db import unit_of_work
from settlement import runs, verification

settlement_cli = AppGroup("settlement", help="Settlement runs and the ledger's invariants.")


@settlement_cli.command("run")
@click.option("--up-to", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z"]),
              help="Cut-off (ISO 8601 with offset); default now.")
def run_settlement(up_to: datetime | None) -> None:
    """Settle every completed, unsettled order up to the cut-off (or finish its run)."""
    run = runs.settle(up_to=up_to or clock.now(), actor=None)
    click.echo(f"run={run.id} status={run.status.value} orders_settled={run.orders_settled} "
               f"gross_amount={run.gross_amount} platform_fee_amount={run.platform_fee_amount}")


@settlement_cli.command("verify")
def verify_settlement() -> None:
    """Check every ledger and settlement invariant; exit status 1 on any violation."""
    with unit_of_work() as session:
        report = verification.verify(session)
    for violation in report.violations:
        click.echo(f"VIOLATION {violation}", err=True)
    click.echo(f"ok={report.ok} orders_settled={report.orders_settled} "
               f"violations={len(report.violations)}")
    if not report.ok:
        sys.exit(1)
