"""Job leases, the jobs run under them, the scheduler that holds them, and the movable clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from app import clock
from app.db import unit_of_work
from app.idempotency import IdempotencyKey
from app.scheduler import (
    HOLDER,
    JOBS,
    JobLease,
    ScheduledJob,
    acquire_lease,
    build_scheduler,
    job_lease,
    release_lease,
    run_job,
)
from tests.factories import make_member

TTL = timedelta(minutes=10)
PURGE = "purge_idempotency_keys"


def _acquire(name: str, holder: str, ttl: timedelta = TTL) -> bool:
    with unit_of_work() as session:
        return acquire_lease(session, name, ttl, holder)


def _release(name: str, holder: str) -> None:
    with unit_of_work() as session:
        release_lease(session, name, holder)


def _lease(name: str) -> JobLease | None:
    with unit_of_work() as session:
        return session.get(JobLease, name, populate_existing=True)


def _keys() -> set[str]:
    with unit_of_work() as session:
        return set(session.scalars(sa.select(IdempotencyKey.key)))


@pytest.fixture
def counting_job(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """A registered job that notes each run (JOBS is restored afterwards)."""
    runs: list[datetime] = []
    monkeypatch.setitem(JOBS, "count_runs", ScheduledJob(
        "count_runs", lambda: runs.append(clock.now()), "interval", {"minutes": 5}, TTL))
    return runs


def test_clock_now_is_timezone_aware_utc():
    now = clock.now()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


def test_clock_advance_moves_now_forward_and_reset_returns_to_real_time():
    try:
        clock.advance(timedelta(days=3))
        clock.advance(timedelta(hours=2))
        shifted = clock.now() - datetime.now(UTC)
        assert timedelta(days=3, hours=2) - timedelta(seconds=5) < shifted
        assert shifted <= timedelta(days=3, hours=2)
    finally:
        clock.reset()
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_a_free_lease_is_taken_and_recorded_with_its_holder_and_expiry(app):
    before = clock.now()
    assert _acquire("nightly", "host-a:1") is True
    lease = _lease("nightly")
    assert lease.holder == "host-a:1"
    assert before + TTL <= lease.leased_until <= clock.now() + TTL


def test_a_second_holder_cannot_take_a_held_lease(app):
    assert _acquire("nightly", "host-a:1")
    assert _acquire("nightly", "host-b:2") is False
    clock.advance(TTL - timedelta(seconds=1))
    assert _acquire("nightly", "host-b:2") is False
    assert _lease("nightly").holder == "host-a:1"


def test_a_second_holder_takes_the_lease_once_it_expires(app):
    assert _acquire("nightly", "host-a:1")
    clock.advance(TTL + timedelta(seconds=1))
    assert _acquire("nightly", "host-b:2") is True
    assert _lease("nightly").holder == "host-b:2"
    assert _acquire("nightly", "host-a:1") is False


def test_the_holder_renews_its_lease_and_keeps_it_past_the_first_expiry(app):
    assert _acquire("nightly", "host-a:1")
    first_expiry = _lease("nightly").leased_until
    clock.advance(TTL / 2)
    assert _acquire("nightly", "host-a:1") is True
    assert _lease("nightly").leased_until > first_expiry
    clock.advance(TTL / 2 + timedelta(seconds=1))  # past the first expiry, not the renewed one
    assert _acquire("nightly", "host-b:2") is False
    assert _lease("nightly").holder == "host-a:1"


def test_a_released_lease_is_free_for_another_holder_at_once(app):
    assert _acquire("nightly", "host-a:1")
    _release("nightly", "host-a:1")
    assert _lease("nightly").holder is None
    assert _acquire("nightly", "host-b:2") is True


def test_only_the_holder_can_release_a_lease(app):
    assert _acquire("nightly", "host-a:1")
    _release("nightly", "host-b:2")
    assert _lease("nightly").holder == "host-a:1"
    assert _acquire("nightly", "host-b:2") is False


def test_leases_of_different_jobs_are_independent(app):
    assert _acquire("nightly", "host-a:1")
    assert _acquire("hourly", "host-b:2") is True


def test_job_lease_holds_the_lease_inside_the_block_and_gives_it_back_after(app):
    with job_lease("nightly", TTL, holder="host-a:1") as acquired:
        assert acquired is True
        assert _acquire("nightly", "host-b:2") is False
    assert _acquire("nightly", "host-b:2") is True


def test_job_lease_gives_the_lease_back_when_the_body_fails(app):
    with pytest.raises(RuntimeError), job_lease("nightly", TTL, holder="host-a:1"):
        raise RuntimeError("job failed")
    assert _lease("nightly").holder is None
    assert _acquire("nightly", "host-b:2") is True


def test_job_lease_yields_false_and_leaves_a_held_lease_alone(app):
    assert _acquire("nightly", "host-b:2")
    with job_lease("nightly", TTL, holder="host-a:1") as acquired:
        assert acquired is False
    assert _lease("nightly").holder == "host-b:2"


def test_run_job_purges_only_the_expired_idempotency_keys(app):
    party_id = make_member().party.id
    ttl = timedelta(hours=app.config["IDEMPOTENCY_KEY_TTL_HOURS"])
    with unit_of_work() as session:
        for key, age in [("expired", ttl + timedelta(minutes=1)),
                         ("fresh", ttl - timedelta(minutes=1))]:
            session.add(IdempotencyKey(party_id=party_id, key=key, request_fingerprint="0" * 64,
                                       created_at=clock.now() - age))
    assert run_job(app, PURGE) is True
    assert _keys() == {"fresh"}
    assert _lease(PURGE).holder is None  # released for the next run, wherever it happens


def test_run_job_skips_the_body_while_another_holder_holds_the_lease(app, counting_job):
    assert _acquire("count_runs", "other-host:7")
    assert run_job(app, "count_runs") is False
    assert counting_job == []
    assert _lease("count_runs").holder == "other-host:7"

    clock.advance(TTL + timedelta(seconds=1))
    assert run_job(app, "count_runs") is True
    assert len(counting_job) == 1


def test_run_job_leaves_expired_keys_alone_when_the_purge_lease_is_held(app):
    party_id = make_member().party.id
    with unit_of_work() as session:
        session.add(IdempotencyKey(party_id=party_id, key="expired", request_fingerprint="0" * 64,
                                   created_at=clock.now() - timedelta(days=30)))
    assert _acquire(PURGE, "other-host:7")
    assert run_job(app, PURGE) is False
    assert _keys() == {"expired"}


def test_run_job_runs_under_this_processes_holder_name(app, monkeypatch, counting_job):
    seen: list[str | None] = []

    def note_holder() -> None:
        seen.append(_lease("count_runs").holder)

    monkeypatch.setattr(JOBS["count_runs"], "func", note_holder)
    assert run_job(app, "count_runs") is True
    assert seen == [HOLDER]


def test_build_scheduler_registers_every_job_with_coalesce_and_one_instance(app):
    assert PURGE in JOBS
    scheduler = build_scheduler(app, blocking=False)
    assert isinstance(scheduler, BackgroundScheduler)
    scheduler.start(paused=True)  # jobs get their defaults when the scheduler starts
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == set(JOBS)
        for job_id, job in jobs.items():
            assert job.coalesce is True
            assert job.max_instances == 1
            assert job.func is run_job
            assert job.args == (app, job_id)
        assert isinstance(jobs[PURGE].trigger, IntervalTrigger)
        assert jobs[PURGE].trigger.interval == timedelta(hours=1)
    finally:
        scheduler.shutdown(wait=False)


def test_build_scheduler_can_block_for_the_dedicated_scheduler_process(app):
    scheduler = build_scheduler(app, blocking=True)
    assert isinstance(scheduler, BlockingScheduler)
    assert str(scheduler.timezone) == app.config["SCHEDULER_TIMEZONE"]


def _race(app: Flask, name: str, contenders: int) -> list[str]:
    """Many holders try to take one lease at the same moment; returns the winners."""
    start = threading.Barrier(contenders)
    winners: list[str] = []
    errors: list[BaseException] = []

    def contend(holder: str) -> None:
        try:
            with app.app_context(), unit_of_work() as session:
                start.wait()
                if acquire_lease(session, name, TTL, holder):
                    winners.append(holder)
        except BaseException as error:  # surfaced in the main thread
            errors.append(error)

    threads = [threading.Thread(target=contend, args=(f"host-{n}:1",))
               for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    return winners


@pytest.mark.postgres_only
def test_exactly_one_of_many_racing_holders_takes_a_new_lease(app):
    for round_ in range(5):
        name = f"race-{round_}"
        winners = _race(app, name, contenders=10)
        assert len(winners) == 1
        assert _lease(name).holder == winners[0]


@pytest.mark.postgres_only
def test_exactly_one_of_many_racing_holders_takes_an_expired_lease(app):
    for round_ in range(5):
        name = f"race-{round_}"
        assert _acquire(name, "crashed-host:1")
        clock.advance(TTL + timedelta(seconds=1))
        winners = _race(app, name, contenders=10)
        assert len(winners) == 1
        assert _lease(name).holder == winners[0]
