"""The usage store in a DuckDB file: the default, no server needed.

Dedupe is physical: `event_id` is the primary key and inserts are `ON CONFLICT DO NOTHING`, so
the first ingestion of an id wins and every total is exact without a `GROUP BY event_id`.

Bulk path: each chunk's columns go to DuckDB as Python lists in ONE statement (`UNNEST` into a
temporary table), then one `INSERT ... SELECT ... ON CONFLICT DO NOTHING`. That is an order of
magnitude faster than `executemany` and needs neither pandas nor Arrow; timestamps travel as
Unix seconds, which convert faster than datetime objects.

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

from ...domain.errors import ConfigurationError
from ...domain.usage import DailyTotal, UsageEvent, require_aware
from . import chunks
from . import epochs as _epochs

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

# Unbound, so a million conversions skip a million attribute lookups; events are tz-aware.
_timestamp = datetime.timestamp

_STAGE = """
CREATE OR REPLACE TEMP TABLE usage_stage AS
SELECT UNNEST($1) AS event_id, UNNEST($2) AS tenant_id, UNNEST($3) AS metric,
       UNNEST($4) AS quantity, UNNEST($5) AS occurred_s, UNNEST($6) AS ingested_s
"""

_MERGE = f"""
INSERT INTO {TABLE}
SELECT event_id, tenant_id, metric, quantity::BIGINT,
       make_timestamp(occurred_s::BIGINT * 1000000), make_timestamp(ingested_s::BIGINT * 1000000)
FROM usage_stage
ON CONFLICT DO NOTHING
"""


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
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._closed = False

    # --- writes -------------------------------------------------------------------------

    def insert(self, events: Iterable[UsageEvent]) -> int:
        new = 0
        for chunk in chunks(events, CHUNK):
            columns = [
                [e.event_id for e in chunk],
                [e.tenant_id for e in chunk],
                [e.metric for e in chunk],
                [e.quantity for e in chunk],
                [int(_timestamp(e.occurred_at)) for e in chunk],
                _epochs(e.ingested_at for e in chunk),
            ]
            with self._write_lock:
                self._conn.execute(_STAGE, columns)
                new += _count(self._conn.execute(_MERGE))
                self._conn.execute("DROP TABLE usage_stage")
        return new

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


def _count(result: duckdb.DuckDBPyConnection) -> int:
    row = result.fetchone()
    return int(row[0]) if row else 0

