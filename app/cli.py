"""flask commands: parties create, seed-demo, audit verify, scheduler run (and the domains'
groups: settlement run / verify)."""

from __future__ import annotations

import shlex
import sys
from typing import NamedTuple, NoReturn

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.db import unit_of_work
from app.errors import DomainError
from app.log.keys import log_verifier
from app.log.verification import verify_log
from app.parties import services as parties
from app.parties.models import SYSTEM, ApiKey, Party, PartyKind, Role
from app.scheduler import JOBS, build_scheduler, run_job
from listings.demo import CatalogSummary, DemoCast, seed_demo_catalog

parties_cli = AppGroup("parties", help="Manage parties.")
audit_cli = AppGroup("audit", help="The audit trail.")
scheduler_cli = AppGroup("scheduler", help="Scheduled jobs.")

class DemoParty(NamedTuple):
    name: str
    credit_code: str
    kind: PartyKind
    roles: list[Role]
    key_variable: str  # the shell variable seed-demo exports its key as


# The demo market: fixed names and valid credit codes, so seeding twice changes nothing.
DEMO_PARTIES = [
    DemoParty("Demo Exchange Operations", "91310000MA1K000019", PartyKind.INSTITUTION,
              [Role.OPERATOR], "OPERATOR_KEY"),
    DemoParty("Demo Market Regulator", "11310000MA1K00002L", PartyKind.PUBLIC_AGENCY,
              [Role.REGULATOR], "REGULATOR_KEY"),
    DemoParty("Demo Certification Centre", "91310000MA1K00003F", PartyKind.INSTITUTION,
              [Role.CERTIFIER], "CERTIFIER_KEY"),
    DemoParty("Demo Traffic Data Co.", "91350100M000100Y43", PartyKind.ENTERPRISE,
              [Role.MERCHANT], "MERCHANT_KEY"),
    DemoParty("Demo Geo Analytics Co.", "911100001000079554", PartyKind.ENTERPRISE,
              [Role.MERCHANT, Role.BROKER], "BROKER_KEY"),
    DemoParty("Demo Insurance Co.", "91110000802100433B", PartyKind.ENTERPRISE,
              [Role.BUYER], "BUYER_KEY"),
    DemoParty("Demo City Transport Bureau", "11310000MA1K00005X", PartyKind.PUBLIC_AGENCY,
              [Role.BUYER], "BUREAU_KEY"),
]


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)


@parties_cli.command("create")
@click.option("--name", required=True)
@click.option("--credit-code", required=True)
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice([role.value for role in Role]))
@click.option("--kind", default=PartyKind.ENTERPRISE.value,
              type=click.Choice([kind.value for kind in PartyKind]))
def create_party(name: str, credit_code: str, roles: tuple[str, ...], kind: str) -> None:
    """Create a party with any roles; prints its new API key alone on the last line."""
    try:
        with unit_of_work() as session:
            party, issued = parties.register_party(
                session, name=name, credit_code=credit_code, kind=PartyKind(kind),
                roles=[Role(role) for role in roles], actor=SYSTEM)
    except DomainError as error:
        _fail(f"error: {error.code}: {error.detail}")
    click.echo(f"party {party.id} ({', '.join(party.roles)})")
    click.echo(issued.raw)


@parties_cli.command("issue-key")
@click.option("--credit-code", required=True)
def issue_key(credit_code: str) -> None:
    """Issue another key for a party (regulators and certifiers included, whose keys no
    operator may issue through the API); prints it alone on the last line."""
    with unit_of_work() as session:
        party = parties.party_with_credit_code(session, credit_code=credit_code)
        if party is None:
            _fail(f"error: not_found: no party has the credit code {credit_code}")
        issued = parties.issue_api_key(session, party=party, actor=SYSTEM)
    click.echo(f"party {party.id} ({', '.join(party.roles)})")
    click.echo(issued.raw)


def seed_demo_data() -> tuple[list[tuple[Party, str]], CatalogSummary]:
    """Create the demo parties that are missing and give each a fresh key (old ones revoked),
    then the demo catalog's admission rules and listings that are missing."""
    seeded = []
    with unit_of_work() as session:
        for name, code, kind, roles, _ in DEMO_PARTIES:
            party = parties.party_with_credit_code(session, credit_code=code)
            if party is None:
                party, issued = parties.register_party(
                    session, name=name, credit_code=code, kind=kind, roles=roles,
                    actor=SYSTEM)
            else:
                for key in session.scalars(select(ApiKey).where(ApiKey.party_id == party.id,
                                                                ApiKey.revoked_at.is_(None))):
                    parties.revoke_api_key(session, party_id=party.id, key_id=key.id,
                                           actor=SYSTEM)
                issued = parties.issue_api_key(session, party=party, actor=SYSTEM)
            seeded.append((party, issued.raw))
        by_name = {name: party for (name, *_), (party, _) in zip(DEMO_PARTIES, seeded,
                                                                 strict=True)}
        catalog = seed_demo_catalog(session, DemoCast(
            operator=by_name["Demo Exchange Operations"],
            certifier=by_name["Demo Certification Centre"],
            traffic=by_name["Demo Traffic Data Co."],
            geo=by_name["Demo Geo Analytics Co."],
            transport_bureau=by_name["Demo City Transport Bureau"]))
    return seeded, catalog


def seed_demo() -> None:
    """Seed the demo market (idempotent) and print each demo party's API key, in a table and
    as export lines for a shell."""
    if current_app.config["ENV_NAME"] == "production":
        _fail("seed-demo refuses to run in production")
    seeded, catalog = seed_demo_data()
    for party, raw in seeded:
        click.echo(f"{'/'.join(party.roles):<16} {party.name:<28} {raw}")
    click.echo(catalog.line())
    click.echo()
    click.echo("# The same keys for your shell. Seeding again (every `make run` does) revokes "
               "them and prints new ones.")
    for demo, (party, raw) in zip(DEMO_PARTIES, seeded, strict=True):
        click.echo(f"export {demo.key_variable}={shlex.quote(raw)}"
                   f"  # {party.name} ({'/'.join(party.roles)})")


@audit_cli.command("verify")
def verify_audit() -> None:
    """Recompute every leaf of the evidence log and its tree; exit status 1 when one does
    not fit the stored tiles or the signed checkpoint."""
    with unit_of_work() as session:
        report = verify_log(session, log_verifier())
    click.echo(f"valid={report.valid} entries={report.entries} head_hash={report.head_hash} "
               f"first_bad_entry={report.first_bad_entry}")
    if not report.valid:
        sys.exit(1)


@scheduler_cli.command("run")
def run_scheduler() -> None:
    """Run the scheduler in this process until stopped (the dedicated scheduler process)."""
    # The app itself, not the context-bound proxy (Flask types the proxy as Flask).
    scheduler = build_scheduler(current_app._get_current_object(), blocking=True)  # type: ignore[attr-defined]
    click.echo(f"scheduler running jobs: {', '.join(sorted(JOBS)) or 'none'}")
    scheduler.start()


@scheduler_cli.command("run-job")
@click.argument("job_id")
def run_one_job(job_id: str) -> None:
    """Run one job now, under its lease."""
    # Checked here, not with click.Choice(sorted(JOBS)) on the argument: that list is taken
    # when this module is imported, before the domains have registered their jobs (empty).
    if job_id not in JOBS:
        raise click.BadParameter(f"{job_id!r} is not one of {', '.join(sorted(JOBS))}.",
                                 param_hint="JOB_ID")
    # The app itself, not the context-bound proxy (Flask types the proxy as Flask).
    ran = run_job(current_app._get_current_object(), job_id)  # type: ignore[attr-defined]
    click.echo(f"{job_id}: {'done' if ran else 'skipped, lease held elsewhere'}")


def register(app: Flask) -> None:
    from app.log.cli import log_cli
    from settlement.cli import settlement_cli

    app.cli.add_command(settlement_cli)
    app.cli.add_command(parties_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(log_cli)
    app.cli.add_command(scheduler_cli)
    app.cli.command("seed-demo")(seed_demo)
