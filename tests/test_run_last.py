"""app.db.run_last: work that runs as a transaction's last statements, after its audit entries
and every other change, just before COMMIT (an order's licenses, whose row lock every buyer
of the product queues on)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app import audit
from app.audit import AuditEntry
from app.db import run_last, unit_of_work
from app.errors import Conflict
from app.extensions import db


def _entries() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) or 0


def test_the_last_work_runs_after_the_audit_entries_just_before_commit(app):
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        with unit_of_work() as session:
            run_last(session, lambda s: s.execute(sa.text("SELECT 'last'")))
            audit.record(session, actor_id=None, action="test.first", subject="s",
                         subject_type="test")
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    assert seen[-1] == "SELECT 'last'"
    assert any(statement.startswith("INSERT INTO audit_entries") for statement in seen[:-1])
    assert _entries() == 1


class _Refused(Conflict):
    code, title = "refused_at_commit", "Refused at commit"


def test_last_work_that_raises_rolls_the_whole_transaction_back(app):
    def refuse(session: Session) -> None:
        raise _Refused("No.")

    with pytest.raises(_Refused), unit_of_work() as session:
        audit.record(session, actor_id=None, action="test.dropped", subject="s",
                     subject_type="test")
        run_last(session, refuse)

    assert _entries() == 0
    with unit_of_work() as session:  # the session is usable again, with nothing queued
        audit.record(session, actor_id=None, action="test.kept", subject="s",
                     subject_type="test")
    assert _entries() == 1


def test_inside_a_savepoint_the_work_runs_at_once(app):
    ran: list[str] = []

    def refuse_now(session: Session) -> None:
        ran.append("now")
        raise _Refused("No.")

    with unit_of_work() as session:
        with pytest.raises(_Refused), session.begin_nested():
            run_last(session, refuse_now)
        assert ran == ["now"]
        run_last(session, lambda s: ran.append("at commit"))
        assert ran == ["now"]
    assert ran == ["now", "at commit"]
