"""What every append-only record shares: its canonical JSON, that text's SHA-256, and the guard
that refuses updates and deletes through the ORM.

Tamper evidence is the evidence log's (`app.log`): audit entries, and the credit ledger's
entries through theirs, are its leaves.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from app.db import Base

# One encoder for every call (json.dumps with options builds one per call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              default=str)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text: one byte string per value."""
    return _CANONICAL.encode(value)


def sha256_hex(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


def make_append_only(model: type[Base]) -> None:
    """Refuse updates and deletes through the ORM, unit of work and bulk statements alike
    (PostgreSQL triggers refuse them from outside the service)."""
    name = model.__tablename__

    def refuse(*_: Any) -> None:
        raise PermissionError(f"{name} is append-only")

    event.listen(model, "before_update", refuse)
    event.listen(model, "before_delete", refuse)

    def refuse_bulk(state: ORMExecuteState) -> None:
        # An UPDATE's or DELETE's statement has a table; SQLAlchemy types it as any Executable.
        if (state.is_update or state.is_delete) and \
                state.statement.table.name == name:  # type: ignore[attr-defined]
            refuse()

    event.listen(Session, "do_orm_execute", refuse_bulk)
