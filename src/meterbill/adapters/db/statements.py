"""SQL shapes the repositories share: the per-database INSERT that can skip conflicts, the
rowcount of a compare-and-set UPDATE, and rows per status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import CursorResult, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def conflict_insert(dialect: str, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say ON CONFLICT DO NOTHING on this database.

    Whether a row went in is read from RETURNING, never from the rowcount: psycopg reports -1
    as the rowcount of such an insert."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect {dialect}")  # pragma: no cover


def session_insert(session: Session, table: Any) -> postgresql.Insert | sqlite.Insert:
    return conflict_insert(session.get_bind().dialect.name, table)


def rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE matched (the check of every compare-and-set)."""
    assert isinstance(result, CursorResult)
    return result.rowcount


def status_counts(session: Session, column: Any, statuses: Sequence[str]) -> dict[str, int]:
    """Rows per value of `column`, every one of `statuses` present (zero included)."""
    found = {status: int(count) for status, count in
             session.execute(select(column, func.count()).group_by(column))}
    return {status: found.get(status, 0) for status in statuses}
