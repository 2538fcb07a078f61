"""The usage store in a DuckDB file: the default, no server needed.

Dedupe is physical: `event_id` is the primary key and inserts are `ON CONFLICT DO NOTHING`, so
the first ingestion of an id wins and every total is exact without a `GROUP BY event_id`.

Bulk path: a batch's columns become one Arrow table that DuckDB scans in place, in ONE
`INSERT ... SELECT ... ON CONFLICT DO NOTHING` (an order of magnitude faster than `executemany`,
and faster than the `UNNEST` of Python lists it replaced); timestamps travel as Unix seconds.
The key is what costs: docs/benchmarks.md, "Usage ingestion fast path", measures the options.

Threads: DuckDB connections are not thread-safe, so each thread reads through its own cursor
(a connection to the same database); writes go through one connection under a lock, since
concurrent writers of the same key would conflict at commit.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ...domain.errors import ConfigurationError
from ...domain.usage import DailyTotal, EventColumns, UsageEvent, require_aware
from . import chunks
from .group_insert import GroupInsert, first_rows

TABLE = "usage_events"
# Rows per INSERT: large enough to amortise the statement, small enough to bound memory.
CHUNK = 100_000

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    event_id    VARCHAR   PRIMARY KEY,
    tenant_id   VARCHAR   NOT NULL,
    metric      VARCHAR   NOT NULL,
    quantity    BIGINT    NOT NULL CHECK (quantity > 0),
    occurred_at TIMESTAMP NOT NULL,  -- UTC, whole seconds
    ingested_at TIMESTAMP NOT NULL   -- UTC, whole seconds
)
"""

_ARROW_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("tenant_id", pa.string()), ("metric", pa.string()),
    ("quantity", pa.int64()), ("occurred_s", pa.int64()), ("ingested_s", pa.int64()),
])

# `usage_stage` is the Arrow table of the chunk, read by DuckDB in place (no copy into rows).
_INSERT = f"""
INSERT INTO {TABLE}
SELECT event_id, tenant_id, metric, quantity, make_timestamp(occurred_s * 1000000),
       make_timestamp(ingested_s * 1000000)
FROM usage_stage
"""
_MERGE = _INSERT + "ON CONFLICT DO NOTHING\n"


class DuckDBUsageStore:
    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = duckdb.connect(self.path)
        except duckdb.IOException as exc:
            # DuckDB lets one process open a file for writing. meterbill commands ask a running
            # `meterbill serve` rather than open its file, so another program holds it.
            raise ConfigurationError(
                f"Cannot open the DuckDB usage store {self.path}: {exc}. Fix: close the program "
                "that has it open (DuckDB admits one process per file), or point "
                "USAGE_STORE_URL at another file or at ClickHouse."
            ) from exc
        self._conn.execute(_SCHEMA)
        self._write_lock = threading.Lock()
        self._group_insert = GroupInsert(self._write)
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._closed = False

    # --- writes -------------------------------------------------------------------------

    def insert(self, events: Iterable[UsageEvent]) -> int:
        return sum(self.insert_columns(EventColumns.of(chunk)) for chunk in chunks(events, CHUNK))

    def insert_columns(self, columns: EventColumns) -> int:
        return self._group_insert(columns)

    def _write(self, columns: EventColumns, which: bool) -> tuple[int, list[bool] | None]:
        firsts = _first_rows(columns.event_id)
        fresh = columns if firsts is None else columns.select(firsts)
        stage = pa.Table.from_arrays(
            [pa.array(fresh.event_id, pa.string()), pa.array(fresh.tenant_id, pa.string()),
             pa.array(fresh.metric, pa.string()), pa.array(fresh.quantity, pa.int64()),
             pa.array(fresh.occurred_s, pa.int64()), pa.array(fresh.ingested_s, pa.int64())],
            schema=_ARROW_SCHEMA)
        with self._write_lock:
            self._conn.register("usage_stage", stage)
            try:
                # Usually every id is new: a plain INSERT (the key still refuses a stored id,
                # and the statement then changes nothing). ON CONFLICT costs more, and more
                # as the table grows, so it runs only when some id is stored already.
                try:
                    new = _count(self._conn.execute(_INSERT))
                    if not which:
                        return new, None
                    return new, firsts if firsts is not None else [True] * len(columns)
                except duckdb.ConstraintException:
                    pass
                if not which:
                    return _count(self._conn.execute(_MERGE)), None
                inserted = {row[0] for row in
                            self._conn.execute(_MERGE + " RETURNING event_id").fetchall()}
            finally:
                self._conn.unregister("usage_stage")
        return len(inserted), first_rows(columns.event_id, inserted)

    def delete_events(self, event_ids: Iterable[str]) -> int:
        removed = 0
        for chunk in chunks(event_ids, CHUNK):
            with self._write_lock:
                result = self._conn.execute(
                    f"DELETE FROM {TABLE} WHERE event_id IN (SELECT UNNEST($1))", [chunk]
                )
                removed += _count(result)
        return removed

    # --- reads --------------------------------------------------------------------------

    def daily_totals(
        self, tenant_ids: Collection[str] | None, metric: str, start: datetime, end: datetime
    ) -> list[DailyTotal]:
        if tenant_ids is not None and not tenant_ids:
            return []
        where, params = _range(metric, start, end)
        if tenant_ids is not None:
            where += " AND tenant_id IN (SELECT UNNEST(?))"
            params.append(sorted(set(tenant_ids)))
        rows = self._cursor().execute(
            f"SELECT tenant_id, CAST(occurred_at AS DATE) AS day, SUM(quantity) "
            f"FROM {TABLE} WHERE {where} GROUP BY tenant_id, day ORDER BY tenant_id, day",
            params,
        ).fetchall()
        return [DailyTotal(tenant, metric, day, int(total)) for tenant, day, total in rows]

    def total(self, tenant_id: str, metric: str, start: datetime, end: datetime) -> int:
        where, params = _range(metric, start, end)
        row = self._cursor().execute(
            f"SELECT COALESCE(SUM(quantity), 0) FROM {TABLE} WHERE {where} AND tenant_id = ?",
            [*params, tenant_id],
        ).fetchone()
        return int(row[0]) if row else 0

    def count_raw(self) -> int:
        row = self._cursor().execute(f"SELECT count(*) FROM {TABLE}").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._cursors_lock:
            if self._closed:
                return
            self._closed = True
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
        self._conn.close()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._cursors_lock:
                if self._closed:
                    raise RuntimeError("the usage store is closed")
                cursor = self._conn.cursor()
                self._cursors.append(cursor)
            self._local.cursor = cursor
        return cursor


def _range(metric: str, start: datetime, end: datetime) -> tuple[str, list[Any]]:
    # The table holds naive UTC timestamps, so bounds are compared as naive UTC too.
    low = require_aware(start, "start").replace(tzinfo=None)
    high = require_aware(end, "end").replace(tzinfo=None)
    return "metric = ? AND occurred_at >= ? AND occurred_at < ?", [metric, low, high]


def _first_rows(event_ids: list[str]) -> list[bool] | None:
    """The first row of each id, or None when no id repeats (the usual batch)."""
    if len(set(event_ids)) == len(event_ids):
        return None
    seen: set[str] = set()
    firsts = []
    for event_id in event_ids:
        firsts.append(event_id not in seen)
        seen.add(event_id)
    return firsts


def _count(result: duckdb.DuckDBPyConnection) -> int:
    rows = result.fetchall()
    return int(rows[0][0]) if rows else 0

