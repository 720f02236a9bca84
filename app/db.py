"""The declarative base, column types shared by every model, and the unit of work."""

from __future__ import annotations

import enum
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar, cast

from sqlalchemy import BigInteger, Boolean, DateTime, Enum, Index, MetaData, Table, Uuid, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction, mapped_column, registry
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement, Executable, literal
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator

from app import clock

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use app.clock.now()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime()},
    )

    if TYPE_CHECKING:
        # Every model here is mapped to a Table (SQLAlchemy types it as any FromClause).
        __table__: ClassVar[Table]


def rows_matched(session: Session, statement: Executable) -> int:
    """Execute an UPDATE or DELETE and return how many rows it matched.

    SQLAlchemy 2.0 types Session.execute as a plain Result whatever the statement; that of
    an UPDATE or DELETE is a CursorResult, which has the row count.
    """
    return cast(CursorResult[Any], session.execute(statement)).rowcount


# Column shapes every domain repeats.
uuid_pk = Annotated[uuid.UUID, mapped_column(Uuid, primary_key=True, default=uuid.uuid4)]
created_at = Annotated[datetime, mapped_column(UTCDateTime(), default=clock.now, nullable=False)]
Money = BigInteger  # integer minor units (fen); never floats

_DEPTH = "unit_of_work_depth"


@contextmanager
def unit_of_work(session: Session | None = None) -> Iterator[Session]:
    """The only place that commits: commit on success, roll back on any error.

    Nested units join the outermost one, so a route, a decorator and a job can each
    open one and the work still commits once, atomically.
    """
    if session is None:
        from app.extensions import db

        session = db.session()
    depth = session.info.get(_DEPTH, 0)
    session.info[_DEPTH] = depth + 1
    try:
        yield session
        if depth == 0:
            session.commit()
    except BaseException as error:
        if depth == 0:
            # A refusal that must leave a record (a prohibited listing stays rejected, with
            # its decision) is a DomainError with keeps_changes; everything else rolls back.
            if getattr(error, "keeps_changes", False):
                session.commit()
            else:
                session.rollback()
        raise
    finally:
        session.info[_DEPTH] = depth


_LAST = "statements_last"


def run_last(session: Session, work: Callable[[Session], None]) -> None:
    """Run `work` as the transaction's last statements: after every other change is flushed
    (audit entries and a stored Idempotency-Key answer included), just before COMMIT.

    For the UPDATE of a row that every concurrent writer of it queues on (a listing's
    licenses): its lock is held from that UPDATE to the end of the COMMIT, so the less
    follows it, the more writers of the row commit per second. `work` may raise (a
    DomainError): the commit fails and the transaction rolls back whole. Inside a savepoint
    it runs at once, since the savepoint's caller acts on its outcome.
    """
    if session.in_nested_transaction():
        work(session)
        return
    session.info.setdefault(_LAST, []).append(work)


@event.listens_for(Session, "before_commit")
def _run_last_statements(session: Session) -> None:
    # Listeners that add rows at commit (app.audit) are registered to run before this one.
    if session.in_nested_transaction():
        return
    work: list[Callable[[Session], None]] = session.info.pop(_LAST, [])
    if work:
        session.flush()
        for item in work:
            item(session)


@event.listens_for(Session, "after_transaction_end")
def _drop_last_statements(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_LAST, None)


def substring_index(name: str, column: str) -> Index:
    """A trigram index serving `ILIKE '%word%'` searches on PostgreSQL (pg_trgm, created by
    the migrations); SQLite, the embedded default, scans instead."""
    return Index(name, column, postgresql_using="gin",
                 postgresql_ops={column: "gin_trgm_ops"}).ddl_if(dialect="postgresql")


# PostgreSQL's "serialization failure" and "deadlock detected": the transaction lost a race
# and rolled back whole, so running it again is safe.
_LOST_RACE = {"40001", "40P01"}
T = TypeVar("T")
log = logging.getLogger(__name__)


def lost_a_race(error: BaseException) -> bool:
    return isinstance(error, OperationalError) and \
        getattr(error.orig, "sqlstate", None) in _LOST_RACE


def retrying(work: Callable[[Session], T], *, attempts: int = 5) -> T:
    """Run `work` in a unit of work of its own, and again (after a short random pause) when
    the database chose it to lose a deadlock: for background work that locks many rows in
    an order the data decides (settlement, payouts), where no caller is there to retry."""
    for attempt in range(1, attempts + 1):
        try:
            with unit_of_work() as session:
                return work(session)
        except OperationalError as error:
            if attempt == attempts or not lost_a_race(error):
                raise
            log.warning("transaction lost a race (%s); running it again",
                        getattr(error.orig, "sqlstate", None))
            time.sleep(random.uniform(0, 0.05 * attempt))
    raise AssertionError("unreachable")


def upsert_insert(session: Session, model: type[Base]) -> Any:
    """An INSERT for the session's dialect that supports ON CONFLICT (PostgreSQL, SQLite)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return insert(model)


def str_enum(enum_cls: type[enum.StrEnum], name: str) -> Enum:
    """A portable enum column storing the members' values, with a CHECK constraint."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in enum_cls),
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class JsonArrayContains(ColumnElement[bool]):
    """SQL: the JSON array in `column` holds `value` (a string), on either database."""

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement),
                           ("value", InternalTraversal.dp_string)]

    def __init__(self, column: Any, value: str) -> None:
        self.column = column
        self.value = value


@compiles(JsonArrayContains, "postgresql")
def _contains_postgresql(element: JsonArrayContains, compiler: SQLCompiler, **kw: Any) -> str:
    needle = literal(json.dumps([element.value]))
    return (f"(CAST({compiler.process(element.column, **kw)} AS JSONB) "
            f"@> CAST({compiler.process(needle, **kw)} AS JSONB))")


@compiles(JsonArrayContains, "sqlite")
def _contains_sqlite(element: JsonArrayContains, compiler: SQLCompiler, **kw: Any) -> str:
    return (f"EXISTS (SELECT 1 FROM json_each({compiler.process(element.column, **kw)}) "
            f"WHERE json_each.value = {compiler.process(literal(element.value), **kw)})")
