"""The flask commands: parties create, seed-demo, audit verify, scheduler run-job."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import sqlalchemy as sa

from app.audit import AuditEntry
from app.cli import DEMO_PARTIES
from app.extensions import db
from app.parties.models import ApiKey, Party
from listings import demo
from listings.models import (
    AdmissionList,
    AdmissionRule,
    Certification,
    Classification,
    Listing,
    ListingStatus,
)
from tests.factories import bearer, new_credit_code
from tests.support import seal_log

ME = "/api/v1/parties/me"
AUDIT_VERIFY = "/api/v1/audit/verify"


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def count(model: type) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_parties_create_prints_a_key_alone_on_the_last_line_that_authenticates_an_operator(
        app, client):
    code = new_credit_code()
    result = app.test_cli_runner().invoke(args=[
        "parties", "create", "--name", "Exchange Ops", "--credit-code", code,
        "--role", "operator"])

    assert result.exit_code == 0, result.output
    key = last_line(result.stdout)
    assert key.startswith("dx_") and " " not in key
    me = client.get(ME, headers=bearer(key))
    assert me.status_code == 200
    assert me.json["name"] == "Exchange Ops"
    assert me.json["credit_code"] == code
    assert me.json["roles"] == ["operator"]
    assert client.get(AUDIT_VERIFY, headers=bearer(key)).status_code == 200


def test_parties_create_grants_several_roles_and_a_kind(app, client):
    result = app.test_cli_runner().invoke(args=[
        "parties", "create", "--name", "City Data Bureau", "--credit-code", new_credit_code(),
        "--role", "regulator", "--role", "certifier", "--kind", "public_agency"])

    assert result.exit_code == 0, result.output
    me = client.get(ME, headers=bearer(last_line(result.stdout))).json
    assert me["roles"] == ["certifier", "regulator"]
    assert me["kind"] == "public_agency"


def test_parties_create_with_an_invalid_code_exits_non_zero_and_stores_nothing(app):
    result = app.test_cli_runner().invoke(args=[
        "parties", "create", "--name", "Bad Code Co.", "--credit-code", "91350100M000100Y44",
        "--role", "operator"])

    assert result.exit_code != 0
    assert "invalid_credit_code" in result.output
    assert "dx_" not in result.output
    assert count(Party) == 0
    assert count(ApiKey) == 0


def test_parties_create_applies_the_name_rule(app):
    runner = app.test_cli_runner()
    blank = runner.invoke(args=["parties", "create", "--name", "   ", "--credit-code",
                                new_credit_code(), "--role", "regulator"])
    hidden = runner.invoke(args=["parties", "create", "--name", "Market\u200b Regulator",
                                 "--credit-code", new_credit_code(), "--role", "regulator"])
    too_long = runner.invoke(args=["parties", "create", "--name", "数" * 201,
                                   "--credit-code", new_credit_code(), "--role", "regulator"])

    for result in (blank, hidden, too_long):
        assert result.exit_code != 0 and "invalid_party_name" in result.output
    assert count(Party) == 0


def test_parties_create_with_a_duplicate_code_exits_non_zero(app):
    code = new_credit_code()
    runner = app.test_cli_runner()
    args = ["parties", "create", "--name", "Twice Co.", "--credit-code", code,
            "--role", "buyer"]
    assert runner.invoke(args=args).exit_code == 0

    again = runner.invoke(args=args)

    assert again.exit_code != 0
    assert "duplicate_credit_code" in again.output
    assert count(Party) == 1


def test_parties_issue_key_prints_a_new_key_of_a_regulator(app, client):
    code = new_credit_code()
    runner = app.test_cli_runner()
    created = runner.invoke(args=["parties", "create", "--name", "Market Regulator",
                                  "--credit-code", code, "--role", "regulator"])
    assert created.exit_code == 0, created.output

    result = runner.invoke(args=["parties", "issue-key", "--credit-code", code.lower()])

    assert result.exit_code == 0, result.output
    key = last_line(result.stdout)
    assert key.startswith("dx_") and key != last_line(created.stdout)
    assert client.get(ME, headers=bearer(key)).json["roles"] == ["regulator"]
    assert client.get(ME, headers=bearer(last_line(created.stdout))).status_code == 200
    issued = db.session.scalars(sa.select(AuditEntry).where(
        AuditEntry.action == "api_key.issued")).all()
    assert [entry.actor_id for entry in issued] == [None, None]


def test_parties_issue_key_for_an_unknown_code_exits_non_zero(app):
    result = app.test_cli_runner().invoke(args=["parties", "issue-key", "--credit-code",
                                                new_credit_code()])

    assert result.exit_code != 0
    assert "not_found" in result.output
    assert count(ApiKey) == 0


def test_parties_create_refuses_an_unknown_role(app):
    result = app.test_cli_runner().invoke(args=[
        "parties", "create", "--name", "X", "--credit-code", new_credit_code(),
        "--role", "king"])

    assert result.exit_code != 0
    assert count(Party) == 0


def seed_demo(app) -> list[str]:
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    return result.stdout.strip().splitlines()


def table(lines: list[str]) -> list[str]:
    """seed-demo's table: one line per demo party, up to its catalog summary."""
    summary = next(n for n, line in enumerate(lines) if line.startswith("catalog: "))
    return lines[:summary + 1]


def seed_keys(app) -> list[str]:
    """The keys seed-demo prints in its table, one line per demo party."""
    return [line.split()[-1] for line in table(seed_demo(app))[:-1]]


def exported(lines: list[str]) -> dict[str, str]:
    """The variables that seed-demo's lines after its table set when pasted into a shell."""
    pasted = "\n".join(lines[len(table(lines)):])
    shell = subprocess.run(["bash", "-c", pasted + "\nenv"], capture_output=True, text=True,
                           env={"PATH": os.environ["PATH"]}, check=True)
    assert not shell.stderr
    return dict(line.split("=", 1) for line in shell.stdout.splitlines()
                if line.split("=", 1)[0].endswith("_KEY"))


def test_seed_demo_prints_each_key_as_an_export_line_a_shell_takes(app, client):
    first = seed_demo(app)
    lines = seed_demo(app)

    variables = exported(lines)
    assert sorted(variables.values()) == sorted(line.split()[-1] for line in table(lines)[:-1])
    for party in DEMO_PARTIES:
        me = client.get(ME, headers=bearer(variables[party.key_variable]))
        assert me.status_code == 200, party.key_variable
        assert me.json["name"] == party.name
    assert {"OPERATOR_KEY", "REGULATOR_KEY", "CERTIFIER_KEY", "MERCHANT_KEY",
            "BUYER_KEY"} <= set(variables)
    # The README's walk through the API uses no key variable that is not printed.
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert set(re.findall(r"\$\{?([A-Z_]+_KEY)\b", readme)) <= set(variables)
    # They say that seeding again (every `make run`) revokes them, and it does.
    assert any(line.startswith("#") and "revoke" in line for line in lines)
    for key in exported(first).values():
        assert client.get(ME, headers=bearer(key)).status_code == 401


def test_seed_demo_twice_leaves_the_seven_demo_parties_with_fresh_keys(app, client):
    first = seed_keys(app)
    second = seed_keys(app)

    assert len(first) == len(second) == len(DEMO_PARTIES) == 7
    assert set(first).isdisjoint(second)
    stored = db.session.execute(sa.select(Party.credit_code, Party.name)).all()
    assert sorted(stored) == sorted((party.credit_code, party.name) for party in DEMO_PARTIES)
    for key, (name, code, kind, roles, _) in zip(second, DEMO_PARTIES, strict=True):
        me = client.get(ME, headers=bearer(key))
        assert me.status_code == 200, name
        assert (me.json["name"], me.json["credit_code"]) == (name, code)
        assert me.json["kind"] == kind.value
        assert me.json["roles"] == [role.value for role in roles]
    for key in first:
        assert client.get(ME, headers=bearer(key)).status_code == 401
    # One live key per demo party after the second run.
    live = db.session.scalar(sa.select(sa.func.count()).select_from(ApiKey)
                             .where(ApiKey.revoked_at.is_(None)))
    assert live == 7


def test_the_seeded_demo_operator_and_regulator_pass_their_routes(app, client):
    keys = dict(zip((name for name, *_ in DEMO_PARTIES), seed_keys(app), strict=True))

    for name in ("Demo Exchange Operations", "Demo Market Regulator"):
        assert client.get(AUDIT_VERIFY, headers=bearer(keys[name])).status_code == 200
    assert client.get(AUDIT_VERIFY,
                      headers=bearer(keys["Demo Insurance Co."])).status_code == 403


def test_seed_demo_twice_grows_the_demo_catalog_once_through_admission(app, client):
    first = seed_demo(app)
    listings, rules, audited = count(Listing), count(AdmissionRule), count(AuditEntry)
    second = seed_demo(app)

    assert (count(Listing), count(AdmissionRule)) == (listings, rules)
    # The second run only rotated the keys: no listing, rule or certification event.
    again = db.session.scalars(sa.select(AuditEntry.action).order_by(AuditEntry.id)
                               .offset(audited))
    assert set(again) == {"api_key.revoked", "api_key.issued"}
    assert listings >= 10
    summaries = table(first)[-1], table(second)[-1]
    assert "created now: 0 listings, 0 rules" in summaries[1]
    assert summaries[0].split("created now:")[0] == summaries[1].split("created now:")[0]
    lists = set(db.session.scalars(sa.select(AdmissionRule.admission_list)))
    assert lists == {AdmissionList.POSITIVE, AdmissionList.NEGATIVE}
    statuses = db.session.execute(sa.select(Listing.id, Listing.status)).all()
    listed = {str(id_) for id_, status in statuses if status is ListingStatus.LISTED}
    assert listed
    assert any(status is ListingStatus.PENDING_REVIEW for _, status in statuses)
    # The sensitive product was certified and then approved by the demo operator.
    certified = db.session.scalars(sa.select(Listing).join(
        Certification, Certification.listing_id == Listing.id)).all()
    assert [listing.status for listing in certified] == [ListingStatus.LISTED]
    assert certified[0].classification is Classification.SENSITIVE
    # A buyer finds exactly the listed ones through the API, and nothing else.
    keys = dict(zip((name for name, *_ in DEMO_PARTIES),
                    (line.split()[-1] for line in table(second)[:-1]), strict=True))
    buyer = keys["Demo Insurance Co."]
    found = client.get("/api/v1/listings", query_string={"page_size": 100},
                       headers=bearer(buyer))
    assert found.status_code == 200, found.json
    assert {item["id"] for item in found.json} == listed
    transport = client.get("/api/v1/listings", query_string={"category": "transport"},
                           headers=bearer(buyer))
    assert transport.json and all(item["category"] == "transport" for item in transport.json)


def test_audit_verify_prints_valid_and_exits_zero(app):
    seed_keys(app)
    entries = count(AuditEntry)
    actions = dict(db.session.execute(
        sa.select(AuditEntry.action, sa.func.count()).group_by(AuditEntry.action)).all())
    assert actions["party.registered"] == actions["api_key.issued"] == 7
    # The demo catalog, submitted through admission, is audited too.
    assert actions["listing.created"] == actions["listing.submitted"] == count(Listing)
    assert actions["admission_rule.created"] == len(demo.RULES)
    sealed = app.test_cli_runner().invoke(args=["log", "seal"])
    assert sealed.exit_code == 0, sealed.output
    assert "sealed=" in sealed.stdout and "tree_size=" in sealed.stdout
    seal_log()  # on PostgreSQL, what a transaction elsewhere in the cluster held back

    result = app.test_cli_runner().invoke(args=["audit", "verify"])

    assert result.exit_code == 0, result.output
    assert "valid=True" in result.stdout
    assert f"entries={entries}" in result.stdout
    assert "first_bad_entry=None" in result.stdout


def test_audit_verify_on_an_empty_trail_is_valid(app):
    result = app.test_cli_runner().invoke(args=["audit", "verify"])

    assert result.exit_code == 0
    assert "valid=True entries=0" in result.stdout


def test_scheduler_run_job_runs_a_registered_job_under_its_lease(app):
    result = app.test_cli_runner().invoke(args=["scheduler", "run-job",
                                                "expire_unpaid_orders"])

    assert result.exit_code == 0, result.output
    assert last_line(result.output) == "expire_unpaid_orders: done"


def test_scheduler_run_job_refuses_an_unknown_job_naming_the_registered_ones(app):
    result = app.test_cli_runner().invoke(args=["scheduler", "run-job", "no_such_job"])

    assert result.exit_code == 2
    assert "settle_completed_orders" in result.output
