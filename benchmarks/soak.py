"""Many workers, one PostgreSQL: a soak of the whole trade flow, with a worker killed part-way.

    python -m benchmarks.soak --database-url URL [--seconds 120] [--workers-per-host 2]
                              [--clients 8] [--payment-ttl-minutes 1] [--job-every 10]
                              [--kill-at 0.4]

The README's deployment on one machine: the scratch database's schema is dropped and rebuilt
by the migrations (`flask db upgrade`), an operator, a regulator and a certifier are created
with `flask parties create`, then two gunicorn hosts (APP_ENV=production, each on its own
free port with its own workers) and one `flask scheduler run` serve the one database. The
settlement job runs every minute (SETTLEMENT_CRON), unpaid orders expire after
--payment-ttl-minutes, delivered orders are accepted by the scheduler at its next run
(ORDER_AUTO_ACCEPT_DAYS=0) and paid orders not delivered by then are refunded by it, with a
non_delivery finding (ORDER_DELIVERY_DAYS=0); besides the scheduler's own triggers,
`flask scheduler run-job` runs each of the trading jobs every --job-every seconds, under the
same leases.

Client threads, each request to either host, drive the whole flow for the time given:
parties register, merchants list products (submitted, certified, approved by the operator),
buyers post demands (some auto_order) and place orders (Idempotency-Key; some on products
with a handful of licenses, sold out under contention), the operator confirms payments,
buyers cancel some paid orders before delivery (a full refund; half of them while their
merchant delivers them), merchants deliver (a few never do: the scheduler refunds those),
buyers accept or dispute, the operator resolves disputes (full, partial or no refund), runs
settlement and confirms payout batches now and then, and credit events are recorded.
Settlement runs start two at a time: one names a cut-off, the other (a manual run
retried without Idempotency-Key) defaults its cut-off to now, so two runs of different
cut-offs meet over the partly refunded orders of the disputes, beside the scheduler's job.
Every order acknowledged with 201 is remembered. At --kill-at of the time, a worker of the
first host busy with a request (a child of the gunicorn master holding a client
connection) is killed with SIGKILL; gunicorn starts another, and clients retry requests whose
connection broke (with the same Idempotency-Key). Then a `flask log seal` beside the
scheduler's sealer is killed with SIGKILL between writing its leaves and its checkpoint.

At the end every process is stopped and the database is checked; each count must be 0:
oversold licenses, orders settled twice, ledger and settlement violations (balanced
transactions, cached balances equal to their entries), refunded money paid out (a refund's
reversal that found its payee's money gone: every refund here comes before its order is
settled, so only overlapping runs pay it out), settlement runs left running behind a later
one, the evidence log's verification, entries never integrated once the sealer has run, entries
integrated twice, checkpoints inconsistent with the previous one, credit entries not matching
their leaves, acknowledged orders missing, orders nobody was acknowledged, payments and refunds
recorded twice, orders refunded before delivery other than once and in full, non_delivery
findings recorded twice, 5xx answers, broken connections outside the worker kill, failed
scheduled jobs. Exit status 1 on any violation (the processes' logs are kept then), 2 when the
soak could not run.
Every process started is stopped whatever happens, even when the soak itself is killed (they
get SIGTERM when it dies: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import itertools
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
API = "/api/v1"

REQUEST_TIMEOUT = 60  # seconds; gunicorn kills a worker stuck for 30
RETRIES = 30  # a broken connection or a key still in progress is retried this often
KILL_WINDOW = 15.0  # seconds after the kill in which broken connections are expected
CATEGORIES = ("transport", "weather", "energy")
PURPOSES = ("research", "logistics_planning")
# Answers that contention and the scheduler make normal, by problem code.
EXPECTED_CODES = {"out_of_stock", "invalid_transition", "listing_not_available",
                  "party_restricted", "listing_banned", "idempotency_key_in_progress",
                  "settlement_run_in_progress"}


class SoakError(RuntimeError):
    """The soak itself could not run (a process did not start, a setup step failed)."""


# --- processes ----------------------------------------------------------------------------

_libc: Any = None


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the soak dies, even by SIGKILL (no orphans)."""
    if _libc is not None:
        _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def libpq_url(url: str) -> str:
    """postgresql://... whatever driver the URL named (psycopg and the CLI take this form)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise SoakError(f"the soak needs PostgreSQL, not {parsed.get_backend_name()}")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def service_env(url: str, work: Path, payment_ttl_minutes: int) -> dict[str, str]:
    """The environment every process of the deployment shares (production configuration)."""
    from app.log.note import Signer

    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("STRIPE_", "PROMETHEUS_", "RATE_LIMIT"))
           and name not in ("REDIS_URL", "PAYMENT_PROVIDER", "SCHEDULER_IN_WEB")}
    env.update({
        "APP_ENV": "production", "FLASK_APP": "app", "DATABASE_URL": url,
        "SECRET_KEY": secrets.token_urlsafe(48), "RATE_LIMITS_ENABLED": "false",
        "LOG_SIGNING_KEY": Signer.generate("exchange.local/log").skey,
        "LOG_LEVEL": "WARNING", "PAYMENT_PROVIDER": "offline", "SCHEDULER_IN_WEB": "false",
        "SETTLEMENT_CRON": "* * * * *", "SETTLEMENT_BATCH_SIZE": "50",
        "ORDER_PAYMENT_TTL_MINUTES": str(payment_ttl_minutes),
        "ORDER_AUTO_ACCEPT_DAYS": "0", "ORDER_DELIVERY_DAYS": "0",
        "PAYOUT_FILE_DIR": str(work / "payouts"),
        "PYTHONUNBUFFERED": "1",
    })
    return env


def flask(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run([str(BIN / "flask"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise SoakError(f"flask {' '.join(args)} failed ({done.returncode}):\n"
                        f"{done.stdout}{done.stderr}")
    return done.stdout


def reset_schema(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
        connection.execute("CREATE SCHEMA public")


def credit_code(n: int, prefix: str = "91") -> str:
    from app.parties.credit_code import check_character

    first17 = f"{prefix}310000MA{n:07d}"
    return first17 + check_character(first17)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path
    port: int | None = None


class Deployment:
    """The processes of the deployment; `stop` ends every one of them and their children."""

    def __init__(self, env: dict[str, str], work: Path) -> None:
        self.env, self.work = env, work
        self.processes: list[Process] = []

    def spawn(self, name: str, argv: list[str], env: dict[str, str],
              port: int | None = None) -> Process:
        global _libc
        if _libc is None:
            with contextlib.suppress(OSError):
                _libc = ctypes.CDLL("libc.so.6", use_errno=True)
        log = self.work / f"{name}.log"
        with open(log, "wb") as out:
            # Its own session (process group): stop() signals the group, workers included.
            popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        process = Process(name, popen, log, port)
        self.processes.append(process)
        return process

    def start_host(self, name: str, workers: int) -> Process:
        port = free_port()
        env = {**self.env, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers)}
        return self.spawn(name, [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py")],
                          env, port)

    def start_scheduler(self) -> Process:
        return self.spawn("scheduler", [str(BIN / "flask"), "scheduler", "run"], self.env)

    def wait_healthy(self, host: Process, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if host.popen.poll() is not None:
                raise SoakError(f"{host.name} exited ({host.popen.returncode}):\n"
                                f"{tail(host.log)}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SoakError(f"{host.name} did not answer /healthz in {timeout:.0f} s:\n"
                        f"{tail(host.log)}")

    def stop(self) -> None:
        """SIGTERM to every process group (gunicorn stops its workers gracefully), then
        SIGKILL to whatever is left after the grace period."""
        for process in self.processes:
            _signal_group(process.popen, signal.SIGTERM)
        deadline = time.monotonic() + 40
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.processes:
            _signal_group(process.popen, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=10)


def _signal_group(popen: subprocess.Popen, sig: int) -> None:
    # The group is the one start_new_session made for this child (its id is the child's).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, sig)


def children(pid: int) -> list[int]:
    """The child processes of `pid` (what `ps --ppid PID -o pid=` lists), read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # pid (comm) state ppid ...: comm may hold spaces and parentheses.
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return sorted(found)


def serving(pids: list[int], port: int) -> list[int]:
    """Those of `pids` holding an established connection on `port`: workers busy with a
    request (from /proc/net/tcp and each process's socket descriptors)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    busy = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir()):
                busy.append(pid)
    return busy


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- HTTP ---------------------------------------------------------------------------------

class GaveUp(Exception):
    """A request that never got an answer (its connection broke RETRIES times)."""


@dataclass
class Answer:
    status: int
    body: Any
    replayed: bool = False

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter = field(default_factory=Counter)
    by_route: Counter = field(default_factory=Counter)  # (label, status, code)
    latencies: list[float] = field(default_factory=list)
    broken: list[tuple[float, str, str]] = field(default_factory=list)  # (t, label, error)
    answered_after_retry: int = 0
    gave_up: int = 0
    driver_errors: list[str] = field(default_factory=list)
    replay_mismatches: int = 0
    server_errors: list[str] = field(default_factory=list)

    def record(self, label: str, answer: Answer, seconds: float, retried: bool) -> None:
        with self.lock:
            self.statuses[answer.status] += 1
            self.by_route[(label, answer.status, answer.code)] += 1
            self.latencies.append(seconds)
            self.answered_after_retry += retried
            if answer.status >= 500 and len(self.server_errors) < 20:
                self.server_errors.append(f"{label} {answer.status} {answer.body}")

    def broke(self, label: str, error: BaseException) -> None:
        with self.lock:
            self.broken.append((time.monotonic(), label, f"{type(error).__name__}: {error}"))


class Http:
    """One connection per request (gunicorn's sync workers close it anyway), to either host."""

    def __init__(self, ports: list[int], stats: Stats) -> None:
        self.ports, self.stats = ports, stats

    def call(self, method: str, path: str, label: str, *, key: str | None = None,
             body: Any = None, idem: str | None = None, query: str = "") -> Answer:
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if idem:
            headers["Idempotency-Key"] = idem
        url = API + path + (f"?{query}" if query else "")
        for attempt in range(RETRIES + 1):
            port = random.choice(self.ports)
            started = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
            try:
                connection.request(method, url, body=data, headers=headers)
                response = connection.getresponse()
                raw = response.read()
                replayed = response.getheader("Idempotent-Replayed") == "true"
            except (OSError, http.client.HTTPException) as error:
                self.stats.broke(label, error)
                time.sleep(min(0.05 * (attempt + 1), 1.0))
                continue
            finally:
                connection.close()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw[:200].decode(errors="replace")
            answer = Answer(response.status, parsed, replayed)
            if answer.status == 409 and answer.code == "idempotency_key_in_progress" \
                    and attempt < RETRIES:
                # The first request with this key (perhaps on the killed worker) is still
                # running or rolling back: the same key again, a little later.
                self.stats.record(label, answer, time.perf_counter() - started, attempt > 0)
                time.sleep(0.2)
                continue
            self.stats.record(label, answer, time.perf_counter() - started, attempt > 0)
            return answer
        with self.stats.lock:
            self.stats.gave_up += 1
        raise GaveUp(f"{method} {path}")


# --- the market the clients share ---------------------------------------------------------

@dataclass
class Member:
    id: str
    key: str
    kind: str = "enterprise"


@dataclass
class ListingInfo:
    id: str
    merchant: Member
    initial: int | None  # licenses at creation; None = unlimited
    unit_price: int
    category: str
    sold_out_until: float = 0.0


@dataclass
class OrderInfo:
    id: str
    buyer: Member
    merchant: Member
    total: int
    dispute_id: str | None = None


class Market:
    """What the clients know: parties, listings, orders at each step of their flow."""

    def __init__(self, operator: Member, regulator: Member, certifier: Member) -> None:
        self.lock = threading.Lock()
        self.operator, self.regulator, self.certifier = operator, regulator, certifier
        self.merchants: list[Member] = []
        self.buyers: list[Member] = []
        self.agencies: list[Member] = []
        self.by_id: dict[str, Member] = {}
        self.listings: dict[str, ListingInfo] = {}
        self.listed: list[ListingInfo] = []
        self.to_pay: deque[OrderInfo] = deque()
        self.to_deliver: deque[OrderInfo] = deque()
        self.to_cancel: deque[OrderInfo] = deque()  # paid, cancelled by the buyer undelivered
        self.to_finish: deque[OrderInfo] = deque()
        self.to_resolve: deque[OrderInfo] = deque()
        self.acknowledged: dict[str, str] = {}  # order id -> how (orders, demands, replay)
        self.runs: dict[str, int] = {}  # settlement run id -> orders settled (last seen)
        self.codes = itertools.count(1)
        self.last_settlement = 0.0
        self.settlements_due = 0  # runs to start now: two at a time, so they overlap
        self.last_payouts = 0.0

    def add_party(self, member: Member, role: str) -> None:
        with self.lock:
            self.by_id[member.id] = member
            if role == "merchant":
                self.merchants.append(member)
            elif member.kind == "public_agency":
                self.agencies.append(member)
            else:
                self.buyers.append(member)

    def acknowledge(self, order: dict[str, Any], how: str) -> OrderInfo | None:
        with self.lock:
            self.acknowledged.setdefault(order["id"], how)
            buyer = self.by_id.get(order["buyer_id"])
            merchant = self.by_id.get(order["merchant_id"])
        if buyer is None or merchant is None:
            return None
        return OrderInfo(order["id"], buyer, merchant, order["total_amount"])

    def push(self, queue: deque[OrderInfo], order: OrderInfo) -> None:
        with self.lock:
            queue.append(order)

    def pop(self, queue: deque[OrderInfo]) -> OrderInfo | None:
        with self.lock:
            if not queue:
                return None
            # Not strictly in order: several threads work on one queue at once.
            index = random.randrange(min(len(queue), 4))
            order = queue[index]
            del queue[index]
            return order


def listing_body(merchant: Member, partner: Member | None, *, category: str,
                 classification: str, licenses: int | None, unit_price: int) -> dict[str, Any]:
    """A complete, admissible listing (as tests/listings/factories.py builds them)."""
    shares: list[dict[str, Any]] = []
    if partner is not None:
        shares = [{"party_id": partner.id, "role": "processor", "basis": "contribution",
                   "weight": 30},
                  {"party_id": merchant.id, "role": "holder", "basis": "investment",
                   "weight": 70, "invested_amount": 500_000}]
        if random.random() < 0.3:
            shares.append({"party_id": partner.id, "role": "broker", "basis": "contribution",
                           "weight": 2})
    return {
        "title": f"Soak {category} data {uuid.uuid4().hex[:8]}",
        "description": "Hourly observations for the soak, anonymized.",
        "category": category, "tags": ["soak", "hourly"],
        "classification": classification, "contains_personal_info": False,
        "anonymized": False, "consent_basis": None,
        "source": {"origin": "collected", "description": "Sensors we operate",
                   "legal_basis": "Sensor operating licence 2024-17"},
        "rights": {"holder_id": merchant.id, "processor_ids": [partner.id] if partner else [],
                   "operator_id": merchant.id},
        "usage_scope": {"purposes": list(PURPOSES), "term_days": 365, "territory": "domestic",
                        "resale": False, "derivatives": True},
        "delivery_mode": "api", "price_model": "subscription", "unit_price": unit_price,
        "currency": "CNY", "licenses_available": licenses, "revenue_shares": shares,
    }


class Client:
    """One client thread: picks a step of the trade flow the market has work for, and does it."""

    def __init__(self, market: Market, http_: Http, stats: Stats, settle_every: float) -> None:
        self.market, self.http, self.stats = market, http_, stats
        self.settle_every = settle_every

    # -- each step ---------------------------------------------------------------------

    def register(self, role: str, kind: str = "enterprise") -> Member | None:
        n = next(self.market.codes)
        body = {"name": f"Soak {role} {n} Co.", "kind": kind, "roles": [role],
                "credit_code": credit_code(n, "11" if kind == "public_agency" else "91")}
        answer = self.http.call("POST", "/parties", "register", body=body)
        if answer.status != 201:
            return None  # a lost answer's retry meets its own code (409): that party is lost
        member = Member(answer.body["id"], answer.body["api_key"], kind)
        if role == "merchant":  # qualified for the sensitive data it may list
            self.http.call("POST", f"/parties/{member.id}/qualifications", "qualify",
                           key=self.market.operator.key, body={
                               "max_classification": "sensitive", "evidence_ref": "Soak",
                               "valid_until": (datetime.now(UTC) + timedelta(days=365))
                               .isoformat()})
        if role == "merchant" and random.random() < 0.5:
            self.http.call("PUT", f"/parties/{member.id}/payout-account", "payout account",
                           key=member.key, body={"method": "bank_file", "bank_name": "Soak Bank",
                                                 "account_name": body["name"],
                                                 "account_number": f"6222 {n:08d}"})
        self.market.add_party(member, role)
        return member

    def create_listing(self) -> None:
        market = self.market
        with market.lock:
            if not market.merchants:
                return
            merchant = random.choice(market.merchants)
            others = [m for m in market.merchants if m is not merchant]
            partner = random.choice(others) if others and random.random() < 0.4 else None
        classification = random.choices(["general", "open", "sensitive"], [70, 15, 15])[0]
        roll = random.random()
        licenses = random.randint(2, 8) if roll < 0.35 else 1_000 if roll < 0.7 else None
        category = random.choice(CATEGORIES)
        unit_price = random.randrange(1_000, 200_000)
        created = self.http.call(
            "POST", "/listings", "create listing", key=merchant.key,
            body=listing_body(merchant, partner, category=category,
                              classification=classification, licenses=licenses,
                              unit_price=unit_price))
        if created.status != 201:
            return
        info = ListingInfo(created.body["id"], merchant, licenses, unit_price, category)
        with market.lock:
            market.listings[info.id] = info
        submitted = self.http.call("POST", f"/listings/{info.id}/submit", "submit listing",
                                   key=merchant.key)
        if submitted.status == 409 and partner is not None:
            # The partner named in the rights and shares consents; the merchant submits again.
            asked = self.http.call("GET", "/consents", "consents", key=partner.key,
                                   query="status=pending&page_size=100")
            for request in asked.body if asked.status == 200 else []:
                if request["listing_id"] == info.id:
                    self.http.call("POST", f"/consents/{request['id']}/decide", "consent",
                                   key=partner.key, body={"decision": "accept"})
            submitted = self.http.call("POST", f"/listings/{info.id}/submit",
                                       "submit listing", key=merchant.key)
        status = submitted.body.get("status") if submitted.status == 200 else None
        if status == "pending_review":
            if classification == "sensitive" or random.random() < 0.2:
                self.http.call("POST", f"/listings/{info.id}/certifications", "certify",
                               key=market.certifier.key,
                               body={"rating": random.choice(["AAA", "AA", "A"]),
                                     "scopes": ["compliance", "quality"],
                                     "valid_until": (datetime.now(UTC) + timedelta(days=365))
                                     .isoformat(), "report_ref": f"CERT-{info.id[:8]}"})
            reviewed = self.http.call("POST", f"/listings/{info.id}/review", "review listing",
                                      key=market.operator.key,
                                      body={"decision": "approve", "reason": "Soak review"})
            status = reviewed.body.get("status") if reviewed.status == 200 else None
        if status == "listed":
            with market.lock:
                market.listed.append(info)

    def place_order(self) -> None:
        market = self.market
        now = time.monotonic()
        with market.lock:
            if not market.buyers or not market.listed:
                return
            buyer = random.choice(market.buyers)
            scarce = [item for item in market.listed
                      if item.initial is not None and item.initial < 10
                      and item.sold_out_until < now]
            listing = random.choice(scarce if scarce and random.random() < 0.25
                                    else market.listed)
            agency = random.choice(market.agencies) if market.agencies else None
        body: dict[str, Any] = {"listing_id": listing.id, "purpose": random.choice(PURPOSES),
                                "quantity": random.randint(1, 2 if listing.initial and
                                                           listing.initial < 10 else 3)}
        if agency is not None and random.random() < 0.1:
            body["beneficiaries"] = [agency.id]
        key = uuid.uuid4().hex
        answer = self.http.call("POST", "/orders", "place order", key=buyer.key, body=body,
                                idem=key)
        if answer.status == 409 and answer.code == "out_of_stock":
            listing.sold_out_until = time.monotonic() + 5  # until licenses come back
            return
        if answer.status == 409 and answer.code == "listing_not_available":
            with market.lock:  # its merchant was blacklisted (lost disputes): off the market
                if listing in market.listed:
                    market.listed.remove(listing)
            return
        if answer.status != 201:
            return
        if random.random() < 0.05:  # the same request again: the same order, replayed
            again = self.http.call("POST", "/orders", "place order (replay)", key=buyer.key,
                                   body=body, idem=key)
            if again.status != 201 or again.body.get("id") != answer.body["id"]:
                with self.stats.lock:
                    self.stats.replay_mismatches += 1
        order = market.acknowledge(answer.body, "POST /orders")
        if order is None:
            return
        roll = random.random()
        if roll < 0.85:
            market.push(market.to_pay, order)
        elif roll < 0.9:
            self.http.call("POST", f"/orders/{order.id}/cancel", "cancel order",
                           key=order.buyer.key)
        # else left unpaid: the scheduler expires it and its licenses go back

    def post_demand(self) -> None:
        market = self.market
        with market.lock:
            if not market.buyers:
                return
            buyer = random.choice(market.buyers)
        body = {"category": random.choice(CATEGORIES), "purpose": random.choice(PURPOSES),
                "max_unit_price": random.randrange(20_000, 250_000),
                "quantity": 1, "auto_order": random.random() < 0.5}
        answer = self.http.call("POST", "/demands", "post demand", key=buyer.key, body=body,
                                idem=uuid.uuid4().hex)
        if answer.status == 201 and answer.body.get("order"):
            order = market.acknowledge(answer.body["order"], "POST /demands")
            if order is not None:
                market.push(market.to_pay, order)

    def pay(self) -> None:
        order = self.market.pop(self.market.to_pay)
        if order is None:
            return
        body = {"reference": f"BANK-{order.id[:12]}"}
        key = uuid.uuid4().hex
        answer = self.http.call("POST", f"/orders/{order.id}/payments/confirm",
                                "confirm payment", key=self.market.operator.key, body=body,
                                idem=key)
        if answer.status == 200 and random.random() < 0.1:
            again = self.http.call("POST", f"/orders/{order.id}/payments/confirm",
                                   "confirm payment (replay)", key=self.market.operator.key,
                                   body=body, idem=key)
            if again.status != 200 or again.body != answer.body:
                with self.stats.lock:
                    self.stats.replay_mismatches += 1
        if answer.status == 200 or self._status(order) == "paid":
            roll = random.random()
            if roll < 0.04:
                return  # never delivered: the scheduler refunds it
            if roll < 0.12:
                self.market.push(self.market.to_cancel, order)
                if roll >= 0.08:
                    return  # else its merchant delivers it meanwhile: one of the two wins
            self.market.push(self.market.to_deliver, order)

    def cancel_paid(self) -> None:
        order = self.market.pop(self.market.to_cancel)
        if order is None:
            return
        key = uuid.uuid4().hex
        answer = self.http.call("POST", f"/orders/{order.id}/cancel", "cancel paid order",
                                key=order.buyer.key, idem=key)
        if answer.status == 200 and random.random() < 0.2:
            again = self.http.call("POST", f"/orders/{order.id}/cancel",
                                   "cancel paid order (replay)", key=order.buyer.key, idem=key)
            if again.status != 200 or again.body != answer.body:
                with self.stats.lock:
                    self.stats.replay_mismatches += 1

    def deliver(self) -> None:
        order = self.market.pop(self.market.to_deliver)
        if order is None:
            return
        answer = self.http.call("POST", f"/orders/{order.id}/deliver", "deliver",
                                key=order.merchant.key,
                                body={"delivery_ref": f"api-credential-{order.id[:8]}",
                                      "checksum": f"sha256:{secrets.token_hex(16)}"})
        if answer.status == 200 or self._status(order) == "delivered":
            self.market.push(self.market.to_finish, order)

    def finish(self) -> None:
        order = self.market.pop(self.market.to_finish)
        if order is None:
            return
        if random.random() < 0.85:
            self.http.call("POST", f"/orders/{order.id}/accept", "accept", key=order.buyer.key)
            return
        answer = self.http.call("POST", f"/orders/{order.id}/disputes", "dispute",
                                key=order.buyer.key, body={"reason": "Rows missing"})
        if answer.status == 201:
            order.dispute_id = answer.body["id"]
            self.market.push(self.market.to_resolve, order)

    def resolve(self) -> None:
        order = self.market.pop(self.market.to_resolve)
        if order is None:
            return
        outcome = random.choice(["refund_full", "refund_partial", "rejected"])
        body: dict[str, Any] = {"outcome": outcome, "note": "Soak decision"}
        if outcome == "refund_partial":
            body["refund_amount"] = max(1, order.total // 3)
        self.http.call("POST", f"/disputes/{order.dispute_id}/resolve", "resolve dispute",
                       key=self.market.operator.key, body=body, idem=uuid.uuid4().hex)

    def settle(self, named_cut_off: bool) -> None:
        # Runs come two at a time. The first names a cut-off shared by every run started in
        # the same 10 seconds (one run per cut-off: concurrent requests finish the same run);
        # the second, a manual run retried without Idempotency-Key, settles up to now.
        body: dict[str, Any] = {}
        key = uuid.uuid4().hex if named_cut_off else None
        if named_cut_off:
            now = datetime.now(UTC).replace(microsecond=0)
            body["up_to"] = (now - timedelta(seconds=now.second % 10)).isoformat()
        answer = self.http.call("POST", "/settlement/runs", "settlement run",
                                key=self.market.operator.key, body=body, idem=key)
        if answer.status == 201:
            with self.market.lock:
                self.market.runs[answer.body["id"]] = answer.body["orders_settled"]
            if key and random.random() < 0.2:
                again = self.http.call("POST", "/settlement/runs", "settlement run (replay)",
                                       key=self.market.operator.key, body=body, idem=key)
                if again.status != 201 or again.body != answer.body:
                    with self.stats.lock:
                        self.stats.replay_mismatches += 1

    def confirm_payouts(self) -> None:
        operator = self.market.operator
        answer = self.http.call("GET", "/payouts", "list payouts", key=operator.key,
                                query="status=in_transit&page_size=100")
        if answer.status != 200:
            return
        batches: dict[str, list[str]] = {}
        for payout in answer.body:
            batches.setdefault(payout["batch_id"], []).append(payout["id"])
        for batch_id, payout_ids in batches.items():
            failed = [{"payout_id": payout_ids[0], "reason": "Account closed"}] \
                if random.random() < 0.2 else []
            self.http.call("POST", f"/payout-batches/{batch_id}/confirm", "confirm payouts",
                           key=operator.key, body={"failed": failed}, idem=uuid.uuid4().hex)

    def credit_event(self) -> None:
        market = self.market
        with market.lock:
            parties = market.merchants + market.buyers
            if not parties:
                return
            party = random.choice(parties)
            recorder = random.choice([market.operator, market.regulator])
        kind, severity = random.choice([("on_time_trade", "positive"),
                                        ("clean_year", "positive"),
                                        ("late_delivery", "minor")])
        self.http.call("POST", "/credit/events", "credit event", key=recorder.key,
                       body={"party_id": party.id, "kind": kind, "severity": severity,
                             "description": "Soak finding", "evidence_ref": "soak"})

    def read(self) -> None:
        market = self.market
        with market.lock:
            buyer = random.choice(market.buyers) if market.buyers else None
            merchant = random.choice(market.merchants) if market.merchants else None
            acknowledged = list(itertools.islice(reversed(market.acknowledged), 20))
        what = random.random()
        if what < 0.3 and buyer:
            self.http.call("GET", "/listings", "search listings", key=buyer.key,
                           query=f"category={random.choice(CATEGORIES)}&page_size=20")
        elif what < 0.5 and acknowledged:
            self.http.call("GET", f"/orders/{random.choice(acknowledged)}", "get order",
                           key=market.regulator.key)
        elif what < 0.7 and merchant:
            self.http.call("GET", f"/parties/{merchant.id}/balance", "balance",
                           key=merchant.key)
        elif what < 0.85 and merchant:
            self.http.call("GET", f"/credit/parties/{merchant.id}", "credit file",
                           key=market.regulator.key)
        else:
            self.http.call("GET", "/ledger/trial-balance", "trial balance",
                           key=market.regulator.key)

    def _status(self, order: OrderInfo) -> str | None:
        """The order's status as the operator sees it (after an answer that was not 200)."""
        answer = self.http.call("GET", f"/orders/{order.id}", "get order",
                                key=self.market.operator.key)
        return answer.body.get("status") if answer.status == 200 else None

    # -- the loop ----------------------------------------------------------------------

    def step(self, merchants_wanted: int, buyers_wanted: int) -> None:
        market = self.market
        now = time.monotonic()
        with market.lock:
            few_merchants = len(market.merchants) < merchants_wanted
            few_buyers = len(market.buyers) < buyers_wanted
            few_agencies = len(market.agencies) < 2
            few_listed = len(market.listed) < 8
            queues = [len(q) for q in (market.to_pay, market.to_deliver, market.to_finish,
                                       market.to_resolve, market.to_cancel)]
            if now - market.last_settlement > self.settle_every:
                market.last_settlement, market.settlements_due = now, 2
            settle_due = market.settlements_due > 0
            named_cut_off = market.settlements_due == 2
            if settle_due:
                market.settlements_due -= 1
            payouts_due = now - market.last_payouts > 2 * self.settle_every
            if payouts_due:
                market.last_payouts = now
        steps: list[tuple[Callable[[], Any], float]] = [
            (lambda: self.register("merchant"), 20 if few_merchants else 0.3),
            (lambda: self.register("buyer"), 20 if few_buyers else 0.5),
            (lambda: self.register("buyer", "public_agency"), 5 if few_agencies else 0),
            (self.create_listing, 15 if few_listed else 3),
            (self.place_order, 30),
            (self.post_demand, 5),
            (self.pay, 30 if queues[0] else 0),
            (self.deliver, 25 if queues[1] else 0),
            (self.finish, 25 if queues[2] else 0),
            (self.resolve, 15 if queues[3] else 0),
            (self.cancel_paid, 25 if queues[4] else 0),
            (lambda: self.settle(named_cut_off), 1000 if settle_due else 0),
            (self.confirm_payouts, 1000 if payouts_due else 0),
            (self.credit_event, 2),
            (self.read, 6),
        ]
        actions, weights = zip(*steps, strict=True)
        random.choices(actions, weights)[0]()

    def run(self, stop: threading.Event, merchants_wanted: int, buyers_wanted: int) -> None:
        while not stop.is_set():
            try:
                self.step(merchants_wanted, buyers_wanted)
            except GaveUp:
                pass  # counted by Http
            except Exception:  # a bug of the soak's own: counted, shown, and on we go
                with self.stats.lock:
                    self.stats.driver_errors.append(traceback.format_exc())


# --- the scheduled jobs, run now and then besides the scheduler ---------------------------

TRADING_JOBS = ("expire_unpaid_orders", "refund_undelivered_orders", "auto_accept_orders",
                "match_open_demands", "settle_completed_orders")


@dataclass
class JobRuns:
    done: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def run_jobs(env: dict[str, str], every: float, stop: threading.Event, runs: JobRuns) -> None:
    """`flask scheduler run-job` for each trading job in turn (under the same lease as the
    scheduler's), so jobs whose own interval is longer than the soak run during it too."""
    for job in itertools.cycle(TRADING_JOBS):
        if stop.wait(every):
            return
        try:
            done = subprocess.run([str(BIN / "flask"), "scheduler", "run-job", job], cwd=ROOT,
                                  env=env, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            runs.failures.append(f"{job}: did not finish in 120 s")
            continue
        if done.returncode != 0:
            runs.failures.append(f"{job}: exit status {done.returncode}\n"
                                 f"{(done.stdout + done.stderr)[-2000:]}")
        else:
            runs.done[job if "done" in done.stdout else f"{job} (lease held)"] += 1


# --- the worker kill ----------------------------------------------------------------------

@dataclass
class Kill:
    host: str = ""
    pid: int | None = None
    at: float | None = None  # monotonic
    at_elapsed: float = 0.0
    workers_before: list[int] = field(default_factory=list)
    workers_after: list[int] = field(default_factory=list)
    replaced_after: float | None = None
    busy: bool = False  # it was serving a request when killed

    def describe(self, broken: list[str]) -> str:
        if self.pid is None:
            return "no worker was killed (soak too short?)"
        new = sorted(set(self.workers_after) - set(self.workers_before))
        replaced = (f"gunicorn started worker {', '.join(map(str, new))} in "
                    f"{self.replaced_after:.1f} s" if self.replaced_after is not None
                    else "gunicorn did NOT replace it")
        state = "serving a request" if self.busy else "idle"
        return (f"SIGKILL to worker {self.pid} ({state}) of {self.host} "
                f"(workers {self.workers_before}) "
                f"at {self.at_elapsed:.1f} s; {replaced}; {len(broken)} broken "
                f"connection(s) in the following {KILL_WINDOW:.0f} s, each retried"
                + (f" ({', '.join(broken)})" if broken else ""))


def kill_a_sealer(env: dict[str, str], attempts: int = 5) -> int | None:
    """`flask log seal` SIGKILLed between writing its leaves and its checkpoint (CRASH_AT),
    beside the scheduler's sealer; the exit status of the run that was killed, else None."""
    for _ in range(attempts):
        run = subprocess.run([sys.executable, "-m", "flask", "log", "seal"], cwd=ROOT,
                             env={**env, "CRASH_AT": "seal.leaves:1"}, capture_output=True,
                             text=True, timeout=60, check=False)
        if run.returncode == -signal.SIGKILL:
            return run.returncode
        time.sleep(0.2)  # nothing to seal yet, or the scheduler's sealer held the lock
    return None


def kill_a_worker(host: Process, workers: int, started: float) -> Kill:
    kill = Kill(host=host.name)
    pids = children(host.popen.pid)
    if not pids:
        return kill
    kill.workers_before = pids
    # A worker in the middle of a request, if one is seen within a few seconds.
    deadline = time.monotonic() + 5
    while not (busy := serving(pids, host.port or 0)) and time.monotonic() < deadline:
        time.sleep(0.005)
    kill.busy = bool(busy)
    kill.pid = random.choice(busy or pids)
    kill.at = time.monotonic()
    kill.at_elapsed = kill.at - started
    os.kill(kill.pid, signal.SIGKILL)
    deadline = kill.at + 30
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now_pids = children(host.popen.pid)
        if kill.pid not in now_pids and len(now_pids) >= workers:
            kill.workers_after = now_pids
            kill.replaced_after = time.monotonic() - kill.at
            break
    return kill


# --- the checks ---------------------------------------------------------------------------

@dataclass
class Findings:
    checks: list[tuple[str, int]] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    totals: list[tuple[str, Any]] = field(default_factory=list)

    def check(self, name: str, count: int, *details: str) -> None:
        self.checks.append((name, count))
        if count:
            self.details.extend(f"{name}: {line}" for line in details[:10])

    @property
    def violations(self) -> int:
        return sum(1 for _, count in self.checks if count)


def check_database(url: str, market: Market, findings: Findings, signing_key: str) -> None:
    from sqlalchemy import exists, func, select
    from sqlalchemy.orm import aliased

    from app import create_app, ledger
    from app.db import unit_of_work
    from app.extensions import db
    from app.log.keys import log_verifier
    from app.log.verification import verify_log
    from config import TestingConfig
    from credit import ledger as credit_ledger
    from credit.models import CreditEntry
    from listings.models import Listing
    from orders.models import (
        Demand,
        Dispute,
        Order,
        OrderStatus,
        Payment,
        Refund,
        holding_licenses,
    )
    from settlement import verification
    from settlement.models import (
        AllocationLine,
        OrderSettlement,
        Payout,
        RunStatus,
        SettlementRun,
    )

    sqlalchemy_url = sa.make_url(url).set(drivername="postgresql+psycopg")
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=sqlalchemy_url.render_as_string(
        hide_password=False), LOG_LEVEL="WARNING", LOG_SIGNING_KEY=signing_key)
    with app.app_context():
        log_counts = seal_and_count_log(app.config["LOG_ORIGIN"])
    with app.app_context(), unit_of_work() as session:
        # Licenses: what each limited listing started with, less what orders still hold.
        held = dict(session.execute(
            select(Order.listing_id, func.sum(Order.quantity))
            .where(holding_licenses())
            .group_by(Order.listing_id)).tuples().all())
        oversold, off, negative, sold_out = 0, [], 0, 0
        for listing_id, available in session.execute(
                select(Listing.id, Listing.licenses_available)
                .where(Listing.licenses_available.is_not(None))).tuples():
            assert available is not None  # the query takes limited listings only
            taken = int(held.get(listing_id, 0))
            known = market.listings.get(str(listing_id))
            initial = known.initial if known else None
            negative += available < 0
            if initial is None:  # its creation's answer was lost: no client ordered it
                if taken:
                    off.append(f"listing {listing_id}: {taken} held, creation unacknowledged")
                continue
            oversold += max(0, taken - initial)
            sold_out += available == 0
            if initial - taken != available:
                off.append(f"listing {listing_id}: {initial} - {taken} held != {available}")
        findings.check("oversold licenses", oversold + negative)
        findings.check("license counts off (initial - held != available)", len(off), *off)

        # Settlement: one mark, one set of lines summing to the total, one ledger posting.
        totals = dict(session.execute(select(Order.id, Order.total_amount)).tuples().all())
        marks = Counter(session.scalars(select(OrderSettlement.order_id)))
        lines = dict(session.execute(
            select(AllocationLine.order_id, func.sum(AllocationLine.amount))
            .group_by(AllocationLine.order_id)).tuples().all())
        postings = Counter(uuid.UUID(key.split(":")[1]) for key in session.scalars(
            select(ledger.LedgerTransaction.key)
            .where(ledger.LedgerTransaction.key.like("order:%:settled"))))
        twice = {order_id for order_id, n in marks.items() if n > 1}
        twice |= {order_id for order_id, n in postings.items() if n > 1}
        twice |= {order_id for order_id, amount in lines.items()
                  if amount > totals.get(order_id, 0)}
        findings.check("orders settled twice", len(twice), *map(str, twice))
        half = (set(marks) ^ set(postings)) | (set(lines) ^ set(marks))
        half |= {order_id for order_id in marks if lines.get(order_id) != totals[order_id]}
        findings.check("orders settled in part (mark, lines, posting disagree)", len(half),
                       *map(str, half))
        # Refunds here all come before their orders settle, so a reversal never finds its
        # payee's money paid out: one that moved a clawback paid out refunded money.
        clawed = list(session.scalars(
            select(ledger.LedgerTransaction.key)
            .join(ledger.LedgerEntry,
                  ledger.LedgerEntry.transaction_id == ledger.LedgerTransaction.id)
            .join(ledger.Account, ledger.Account.id == ledger.LedgerEntry.account_id)
            .where(ledger.LedgerTransaction.kind == "reversal",
                   ledger.Account.kind == "clawback", ledger.LedgerEntry.amount < 0)))
        findings.check("refunded money paid out (reversals clawing back)", len(clawed),
                       *clawed)
        # Runs take turns, and each finishes any run left running first: one still running
        # behind a run started after it was abandoned.
        later = aliased(SettlementRun)
        stuck = list(session.scalars(select(SettlementRun.id).where(
            SettlementRun.status == RunStatus.RUNNING,
            exists().where(later.status == RunStatus.COMPLETED,
                           later.started_at > SettlementRun.started_at))))
        findings.check("settlement runs left running behind a later run", len(stuck),
                       *map(str, stuck))

        # Money in and out once: a payment and its posting per paid order, a refund per
        # refunded dispute or undelivered order (an order has one or the other, never both).
        payments = Counter(session.scalars(select(Payment.order_id)))
        paid_postings = Counter(uuid.UUID(key.split(":")[1]) for key in session.scalars(
            select(ledger.LedgerTransaction.key)
            .where(ledger.LedgerTransaction.key.like("order:%:paid"))))
        paid = set(session.scalars(select(Order.id).where(Order.paid_amount > 0)))
        twice_paid = {o for o, n in (payments + paid_postings).items() if n > 2}
        payment_off = (paid ^ set(payments)) | (paid ^ set(paid_postings))
        refunds = Counter(session.scalars(select(Refund.order_id)))
        twice_refunded = {o for o, n in refunds.items() if n > 1}
        findings.check("payments or refunds recorded twice",
                       len(twice_paid) + len(twice_refunded),
                       *map(str, twice_paid | twice_refunded))
        findings.check("paid orders without exactly one payment and posting", len(payment_off),
                       *map(str, payment_off))
        # Refunded before delivery (cancelled by the buyer once paid, or for non-delivery):
        # once, in full, with its ledger posting; each non-delivery found once.
        undelivered = dict(session.execute(
            select(Order.id, Order.paid_amount - Order.refunded_amount)
            .where(Order.status == OrderStatus.REFUNDED, Order.delivered_at.is_(None)))
            .tuples().all())
        refunded_amounts = dict(session.execute(
            select(Refund.order_id, func.sum(Refund.amount))
            .where(Refund.order_id.in_(list(undelivered))).group_by(Refund.order_id))
            .tuples().all())
        order_of_refund = dict(session.execute(
            select(Refund.id, Refund.order_id).where(Refund.order_id.in_(list(undelivered))))
            .tuples().all())
        posted = Counter(order_of_refund[refund_id] for refund_id in (
            uuid.UUID(key.split(":")[1]) for key in session.scalars(
                select(ledger.LedgerTransaction.key).where(
                    ledger.LedgerTransaction.kind == "refund")))
            if refund_id in order_of_refund)
        paid_back = dict(session.execute(select(Order.id, Order.paid_amount)
                                         .where(Order.id.in_(list(undelivered)))).tuples().all())
        wrong = {order_id for order_id, left in undelivered.items()
                 if left != 0 or refunds.get(order_id) != 1 or posted.get(order_id) != 1
                 or refunded_amounts.get(order_id) != paid_back[order_id]}
        findings.check("orders refunded before delivery other than once and in full",
                       len(wrong), *map(str, wrong))
        non_delivery = Counter(session.scalars(select(CreditEntry.evidence_ref).where(
            CreditEntry.kind == "non_delivery")))
        findings.check("non_delivery findings recorded twice",
                       sum(1 for n in non_delivery.values() if n > 1),
                       *(ref for ref, n in non_delivery.items() if n > 1 and ref))

        # The ledger balanced, every cached balance its entries (and every settlement
        # invariant flask settlement verify checks).
        report = verification.verify(session)
        trial = ledger.trial_balance(session)
        findings.check("ledger and settlement violations (settlement.verification)",
                       len(report.violations), *report.violations)
        findings.check("unbalanced ledger transactions", len(trial.unbalanced_transactions),
                       *trial.unbalanced_transactions)
        findings.check("cached balances differing from their entries",
                       len(trial.mismatched_accounts), *trial.mismatched_accounts)

        chain = verify_log(session, log_verifier())
        findings.check("evidence log failing verification", 0 if chain.valid else 1,
                       f"first bad entry {chain.first_bad_entry}")
        for name, found in log_counts.items():
            findings.check(name, len(found), *found)
        credit_report = credit_ledger.verify(session, log_verifier())
        findings.check("credit entries not matching their leaves", 0 if credit_report.valid else 1,
                       f"first bad entry {credit_report.first_bad_entry}")

        # Every acknowledged order is there; every order there was acknowledged (to its
        # buyer, or placed for an auto-order demand): no retry acted twice.
        acknowledged = {uuid.UUID(order_id) for order_id in market.acknowledged}
        stored = set(totals)
        missing = acknowledged - stored
        for_demands = set(session.scalars(select(Demand.order_id)
                                          .where(Demand.order_id.is_not(None))))
        unacknowledged = stored - acknowledged - for_demands
        findings.check("acknowledged orders missing", len(missing), *map(str, missing))
        findings.check("orders nobody was acknowledged (duplicate effects)",
                       len(unacknowledged), *map(str, unacknowledged))

        by_status = Counter(session.scalars(select(Order.status)))
        findings.totals += [
            ("orders acknowledged (201)", len(acknowledged)),
            ("orders in the database", len(stored)),
            ("orders by status", ", ".join(f"{status.value} {n}" for status, n
                                           in sorted(by_status.items()))),
            ("limited listings sold out at the end", sold_out),
            ("settlement runs", session.scalar(select(func.count()).select_from(SettlementRun))),
            ("orders settled", len(marks)),
            ("disputes / refunds", f"{session.scalar(select(func.count()).select_from(Dispute))}"
                                   f" / {sum(refunds.values())}"),
            ("refunded before delivery: by the buyer / for non-delivery",
             f"{len(undelivered) - len(non_delivery)} / {len(non_delivery)}"),
            ("payouts", session.scalar(select(func.count()).select_from(Payout))),
            ("ledger debits (fen)", trial.total_debits),
            ("audit entries", chain.entries),
            ("credit entries", session.scalar(select(func.count()).select_from(CreditEntry))),
        ]
    with app.app_context():
        db.engine.dispose()


def seal_and_count_log(origin: str, wait_seconds: float = 30) -> dict[str, list[str]]:
    """Seal what is left (in an app context), then what the evidence log got wrong: entries
    not integrated once the sealer has run, entries integrated twice, and checkpoints that
    no consistency proof joins to the one before."""
    from sqlalchemy import func, select

    from app.audit import AuditEntry
    from app.db import unit_of_work
    from app.log.merkle import consistency_proof, verify_consistency
    from app.log.models import DatabaseTiles, LogCheckpoint, LogLeaf
    from app.log.sealer import seal
    from app.log.tiles import TileHashReader

    deadline = time.monotonic() + wait_seconds
    while True:
        seal(origin)
        with unit_of_work() as session:
            never = [str(entry_id) for entry_id in session.scalars(
                select(AuditEntry.id).where(AuditEntry.id.not_in(select(LogLeaf.entry_id))))]
        if not never or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    with unit_of_work() as session:
        twice = [str(entry_id) for entry_id in session.scalars(
            select(LogLeaf.entry_id).group_by(LogLeaf.entry_id).having(func.count() > 1))]
        checkpoints = session.execute(select(LogCheckpoint.tree_size, LogCheckpoint.root_hash)
                                      .order_by(LogCheckpoint.tree_size)).all()
        reader = TileHashReader(DatabaseTiles(session))
        inconsistent = [
            f"{first.tree_size} -> {second.tree_size}"
            for first, second in itertools.pairwise(checkpoints)
            if not verify_consistency(
                first.tree_size, second.tree_size, first.root_hash, second.root_hash,
                consistency_proof(reader, first.tree_size, second.tree_size))]
    return {"entries never integrated": never, "entries integrated twice": twice,
            "checkpoints inconsistent with the previous": inconsistent}


def error_lines(log: Path) -> list[str]:
    """Lines of a process's log at level ERROR or above (JSON lines, or a plain traceback)."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            level = json.loads(line).get("level")
        except (ValueError, AttributeError):
            level = "ERROR" if "Traceback" in line or "raised an exception" in line else None
        if level in ("ERROR", "CRITICAL"):
            found.append(line[:1000])
    return found


# --- the soak -----------------------------------------------------------------------------

def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def bootstrap(env: dict[str, str]) -> tuple[Member, Member, Member]:
    """Migrations, then the operator, regulator and certifier through the CLI."""
    flask(env, "db", "upgrade")
    members = []
    for n, (name, role, kind, prefix) in enumerate([
            ("Soak Exchange Operations", "operator", "institution", "91"),
            ("Soak Market Regulator", "regulator", "public_agency", "11"),
            ("Soak Certification Centre", "certifier", "institution", "91")]):
        out = flask(env, "parties", "create", "--name", name, "--credit-code",
                    credit_code(9_000_000 + n, prefix), "--role", role, "--kind", kind)
        lines = out.strip().splitlines()
        party_id = re.search(r"party ([0-9a-f-]{36})", out)
        if not lines or party_id is None:
            raise SoakError(f"flask parties create printed no key:\n{out}")
        members.append(Member(party_id.group(1), lines[-1].strip(), kind))
    return members[0], members[1], members[2]


def seed_rules(http_: Http, operator: Member, certifier: Member) -> None:
    """A positive-list rule: weather products of merchants at level A take the fast track;
    and the certifier's accreditation, without which it certifies nothing."""
    answer = http_.call("POST", "/admission-rules", "admission rule", key=operator.key,
                        body={"list": "positive", "name": "Weather data",
                              "reason": "Encouraged open weather data", "categories": ["weather"]})
    if answer.status != 201:
        raise SoakError(f"admission rule refused: {answer.status} {answer.body}")
    answer = http_.call("POST", f"/certifiers/{certifier.id}/accreditations", "accredit",
                        key=operator.key, body={
                            "scopes": ["compliance", "quality", "security"],
                            "max_classification": "important", "evidence_ref": "Soak CNAS",
                            "valid_until": (datetime.now(UTC) + timedelta(days=365)).isoformat()})
    if answer.status != 201:
        raise SoakError(f"accreditation refused: {answer.status} {answer.body}")


def soak(args: argparse.Namespace) -> int:
    url = libpq_url(args.database_url)
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    (work / "payouts").mkdir()
    env = service_env(url, work, args.payment_ttl_minutes)
    print(f"soak          {args.seconds} s, 2 gunicorn hosts x {args.workers_per_host} sync "
          f"workers + 1 scheduler, {args.clients} client threads; logs in {work}", flush=True)
    reset_schema(url)
    operator, regulator, certifier = bootstrap(env)

    deployment = Deployment(env, work)
    stats = Stats()
    market = Market(operator, regulator, certifier)
    job_runs = JobRuns()
    stop = threading.Event()
    kill = Kill()
    threads: list[threading.Thread] = []
    exited: list[str] = []
    started = time.monotonic()
    try:
        hosts = [deployment.start_host(name, args.workers_per_host) for name in ("host-a",
                                                                                 "host-b")]
        scheduler = deployment.start_scheduler()
        for host in hosts:
            deployment.wait_healthy(host)
        http_ = Http([host.port for host in hosts if host.port], stats)
        seed_rules(http_, operator, certifier)

        started = time.monotonic()
        settle_every = max(3.0, args.seconds / 15)
        for n in range(args.clients):
            client = Client(market, http_, stats, settle_every)
            threads.append(threading.Thread(
                target=client.run, args=(stop, 3 + args.clients // 2, 2 * args.clients),
                name=f"client-{n}", daemon=True))
        threads.append(threading.Thread(target=run_jobs, args=(env, args.job_every, stop,
                                                                 job_runs),
                                        name="jobs", daemon=True))
        for thread in threads:
            thread.start()

        kill_at = started + max(3.0, args.kill_at * args.seconds)
        end = started + args.seconds
        while time.monotonic() < end:
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
            if kill.pid is None and time.monotonic() >= kill_at:
                kill = kill_a_worker(hosts[0], args.workers_per_host, started)
                print(f"worker kill   SIGKILL to worker {kill.pid} of {kill.host} at "
                      f"{kill.at_elapsed:.1f} s", flush=True)
                sealer_killed = kill_a_sealer(env)
                print(f"sealer kill   {'SIGKILL' if sealer_killed else 'not killed'} mid-batch "
                      f"(flask log seal, CRASH_AT=seal.leaves:1) at "
                      f"{time.monotonic() - started:.1f} s", flush=True)
            for process in (*hosts, scheduler):
                if process.popen.poll() is not None and process.name not in exited:
                    exited.append(process.name)
                    print(f"!! {process.name} exited ({process.popen.returncode})", flush=True)
        stop.set()
        for thread in threads:
            thread.join(timeout=REQUEST_TIMEOUT * 2)
        duration = time.monotonic() - started
    finally:
        stop.set()
        deployment.stop()

    stuck = [thread.name for thread in threads if thread.is_alive()]
    findings = Findings()
    check_database(url, market, findings, env["LOG_SIGNING_KEY"])

    in_window = [b for b in stats.broken
                 if kill.at is not None and kill.at <= b[0] <= kill.at + KILL_WINDOW]
    outside = [b for b in stats.broken if b not in in_window]
    server_errors = sum(n for status, n in stats.statuses.items() if status >= 500)
    scheduler_errors = error_lines(work / "scheduler.log")
    findings.check("5xx answers", server_errors, *stats.server_errors)
    findings.check("broken connections outside the worker kill", len(outside),
                   *(f"{label}: {error}" for _, label, error in outside))
    findings.check("requests never answered (retries exhausted)", stats.gave_up)
    findings.check("Idempotency-Key replays that differed", stats.replay_mismatches)
    findings.check("failed scheduled jobs", len(job_runs.failures) + len(scheduler_errors),
                   *job_runs.failures, *scheduler_errors)
    findings.check("processes that died or hung", len(exited) + len(stuck)
                   + (1 if kill.pid is not None and kill.replaced_after is None else 0),
                   *exited, *stuck)
    findings.check("soak driver errors", len(stats.driver_errors), *stats.driver_errors)

    requests = sum(stats.statuses.values())
    print()
    p50 = 1000 * statistics.median(stats.latencies or [0])
    p99 = 1000 * percentile(stats.latencies, 0.99)
    print(f"duration      {duration:.1f} s of load; {requests} requests answered "
          f"({requests / duration:.0f}/s), p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    print("by status     " + ", ".join(f"{status}: {n}" for status, n
                                       in sorted(stats.statuses.items())))
    print(f"worker kill   {kill.describe([label for _, label, _ in in_window])}")
    print(f"retries       {len(stats.broken)} broken connections, "
          f"{stats.answered_after_retry} requests answered after a retry")
    print("jobs run      " + (", ".join(f"{job} {n}" for job, n in sorted(job_runs.done.items()))
                              or "none"))
    unexpected = [(label, status, code, n) for (label, status, code), n
                  in sorted(stats.by_route.items(), key=lambda item: -item[1])
                  if status >= 400 and code not in EXPECTED_CODES]
    expected: Counter[str] = Counter()
    for (_, status, code), n in stats.by_route.items():
        if status >= 400 and code in EXPECTED_CODES:
            expected[f"{status} {code}"] += n
    print("contention    " + (", ".join(f"{what}: {n}" for what, n in expected.most_common())
                              or "none"))
    if unexpected:
        print("other errors  " + "; ".join(f"{label} {status} {code}: {n}"
                                           for label, status, code, n in unexpected[:12]))
    for name, value in findings.totals:
        print(f"{name:<40} {value}")
    print()
    print("checks (each must be 0)")
    for name, count in findings.checks:
        print(f"  [{'ok' if count == 0 else 'FAIL'}] {name}: {count}")
    if findings.details:
        print()
        for line in findings.details:
            print(f"  {line}")
        for process in deployment.processes:
            errors = [line for line in process.log.read_text(errors="replace").splitlines()
                      if "ERROR" in line or "Traceback" in line][-8:]
            if errors:
                print(f"  {process.name} log ({process.log}):")
                print("\n".join(f"    {line[:400]}" for line in errors))
    print()
    print(f"result        {findings.violations} violation(s)"
          + (f"; logs kept in {work}" if findings.violations else ""))
    if not findings.violations:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if findings.violations else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True,
                        help="a scratch PostgreSQL database: its schema is dropped")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--workers-per-host", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--payment-ttl-minutes", type=int, default=1,
                        help="ORDER_PAYMENT_TTL_MINUTES (0: unpaid orders expire at the next "
                             "run of the expiry job)")
    parser.add_argument("--job-every", type=float, default=10,
                        help="seconds between `flask scheduler run-job` runs")
    parser.add_argument("--kill-at", type=float, default=0.4,
                        help="when to kill a worker, as a fraction of --seconds")
    args = parser.parse_args()

    def terminate(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally that stops everything

    signal.signal(signal.SIGTERM, terminate)
    try:
        sys.exit(soak(args))
    except SoakError as error:
        print(f"soak could not run: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
