"""APScheduler wiring and the job lease that makes a second scheduler harmless.

Jobs live in their domains and register here with `@scheduled_job`; every job body runs
under a database lease, so two scheduler processes (or a web process hosting one) never run
the same job at the same time.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from flask import Flask
from sqlalchemy import String, or_, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from app import clock
from app.db import Base, rows_matched, unit_of_work, upsert_insert

log = logging.getLogger(__name__)

HOLDER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobLease(Base):
    """Who may run a job until when; taken and given back with conditional UPDATEs."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(120))
    leased_until: Mapped[datetime]


def acquire_lease(session: Session, name: str, ttl: timedelta, holder: str = HOLDER) -> bool:
    """Take the lease if it is free or expired; portable (no FOR UPDATE SKIP LOCKED on SQLite)."""
    now = clock.now()
    taken = rows_matched(session, (
        update(JobLease)
        .where(JobLease.name == name, or_(JobLease.leased_until <= now, JobLease.holder == holder))
        .values(holder=holder, leased_until=now + ttl)))
    if taken:
        return True
    # RETURNING, not rowcount: SQLAlchemy closes an INSERT's cursor at once and psycopg 3
    # resets rowcount to -1 on close, so rowcount would say "not created" on PostgreSQL.
    created = session.execute(
        upsert_insert(session, JobLease).values(name=name, holder=holder, leased_until=now + ttl)
        .on_conflict_do_nothing().returning(JobLease.name)
    ).first()
    return created is not None


def release_lease(session: Session, name: str, holder: str = HOLDER) -> None:
    session.execute(
        update(JobLease).where(JobLease.name == name, JobLease.holder == holder)
        .values(holder=None, leased_until=clock.now())
    )


@contextmanager
def job_lease(name: str, ttl: timedelta, holder: str = HOLDER) -> Iterator[bool]:
    """Yield True while this process holds the named lease, False when another does."""
    with unit_of_work() as session:
        acquired = acquire_lease(session, name, ttl, holder)
    if not acquired:
        log.info("job skipped: lease held elsewhere", extra={"job": name})
        yield False
        return
    try:
        yield True
    finally:
        with unit_of_work() as session:
            release_lease(session, name, holder)


@dataclass
class ScheduledJob:
    id: str
    func: Callable[[], Any]
    trigger: str
    trigger_args: dict[str, Any] = field(default_factory=dict)
    lease_ttl: timedelta = timedelta(minutes=10)


JOBS: dict[str, ScheduledJob] = {}


def scheduled_job(job_id: str, trigger: str, *, lease_ttl: timedelta = timedelta(minutes=10),
                  **trigger_args: Any) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Register a job body (a function of no arguments, run in an app context)."""

    def decorator(func: Callable[[], Any]) -> Callable[[], Any]:
        JOBS[job_id] = ScheduledJob(job_id, func, trigger, trigger_args, lease_ttl)
        return func

    return decorator


def run_job(app: Flask, job_id: str) -> bool:
    """Run one registered job under its lease; False when another process holds it."""
    job = JOBS[job_id]
    with app.app_context(), job_lease(job.id, job.lease_ttl) as acquired:
        if acquired:
            job.func()
        return acquired


def build_scheduler(app: Flask, *, blocking: bool) -> BaseScheduler:
    """A scheduler holding every registered job; jobs never overlap or pile up."""
    scheduler_cls = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = scheduler_cls(
        timezone=app.config["SCHEDULER_TIMEZONE"],
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
    )
    for job in JOBS.values():
        trigger_args = dict(job.trigger_args)
        # A schedule set by configuration: crontab_from names the setting with the crontab.
        setting = trigger_args.pop("crontab_from", None)
        trigger = CronTrigger.from_crontab(app.config[setting],
                                           timezone=app.config["SCHEDULER_TIMEZONE"]) \
            if setting else job.trigger
        # An interval set by configuration: seconds_from names the setting with the seconds.
        interval = trigger_args.pop("seconds_from", None)
        if interval:
            trigger_args["seconds"] = app.config[interval]
        scheduler.add_job(run_job, trigger, args=[app, job.id], id=job.id, name=job.id,
                          replace_existing=True, **trigger_args)
    return scheduler


def init_scheduler(app: Flask) -> None:
    """Host the scheduler in the web process when configured (the single-machine default)."""
    if app.config["SCHEDULER_IN_WEB"] and not app.config.get("TESTING"):
        scheduler = build_scheduler(app, blocking=False)
        scheduler.start()
        app.extensions["scheduler"] = scheduler
