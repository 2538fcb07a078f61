"""The usage store on a ClickHouse server, through `clickhouse-driver` (native protocol).

Written for what Debian ships (ClickHouse 18.16): no DateTime64 (timestamps are whole seconds,
as in the domain), no LowCardinality, mutations asynchronous.

Table: ReplacingMergeTree ordered by (tenant_id, metric, toDate(occurred_at), event_id), so a
day's usage of a tenant is one contiguous range. Merges remove duplicates only eventually,
so totals never trust the physical rows; they group by `event_id` and take the row with the
highest `ver`. `ver` falls as time passes, so the FIRST ingestion of an id wins, as with
DuckDB's `ON CONFLICT DO NOTHING`, and merges keep that same row.

Why not FINAL: measured on 18.16, a WHERE on `occurred_at` (not a key column; the key holds
its day) is applied before FINAL collapses duplicates, so a retried event whose timestamp
differs from the first one is counted inside a range that the first one is outside of. FINAL
also dedupes only rows with the same whole key, so an id resent under another day counts
twice. `GROUP BY event_id` then filtering the chosen row is exact; rows are first narrowed by
whole UTC days (which the index serves) so the grouping stays small.

Inserts skip ids already stored for the same tenants and days (one indexed lookup per chunk),
which keeps the count of new rows exact and the table small; a process's concurrent inserts
share one lookup and one statement (`group_insert`), so they cannot race each other. Between
several processes, the same id sent to two of them at the same moment can be counted as new by
both (the answers' `duplicates` then miss one), yet it is counted once by every total.

Optionally, an existing events table (the seeds' `usage_events(tenant_id, timestamp,
tokens_used, query_id)`) is read as well, mapped by `SourceTable`: each of its rows is one
`queries` event of quantity 1 and one `tokens` event of quantity `tokens_used`, identified by
`query_id`. It is read-only: `delete_events` does not touch it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from clickhouse_driver import Client

from ...domain.errors import ConfigurationError, MeterbillError
from ...domain.usage import DailyTotal, EventColumns, UsageEvent, require_aware
from . import chunks
from .group_insert import GroupInsert

DEFAULT_TABLE = "meterbill_usage_events"
CHUNK = 100_000
# Ids per ALTER ... DELETE: keeps the statement well under ClickHouse's 256 KiB query limit.
DELETE_CHUNK = 500
_MAX_VER = 2**64 - 1
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    event_id    String,
    tenant_id   String,
    metric      String,
    quantity    UInt64,
    occurred_at DateTime('UTC'),
    ingested_at DateTime('UTC'),
    ver         UInt64
) ENGINE = ReplacingMergeTree(ver)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (tenant_id, metric, toDate(occurred_at), event_id)
"""


@dataclass(frozen=True)
class SourceTable:
    """Where an existing events table keeps each field (the defaults are the seeds' names)."""

    table: str = "usage_events"
    tenant_id: str = "tenant_id"
    occurred_at: str = "timestamp"
    event_id: str = "query_id"
    tokens: str | None = "tokens_used"  # None: the table has no token counts
    database: str | None = None  # None: the store's own database

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None and not _IDENTIFIER.match(value):
                raise ValueError(f"source table {item.name} {value!r} is not a plain "
                                 "identifier (letters, digits, underscore)")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str | None]) -> SourceTable:
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise ValueError(f"unknown source table setting(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        return cls(**dict(mapping))  # type: ignore[arg-type]


class ClickHouseUsageStore:
    def __init__(
        self,
        url: str,
        *,
        table: str = DEFAULT_TABLE,
        source: SourceTable | Mapping[str, str | None] | None = None,
        mutation_timeout: float = 120.0,
    ) -> None:
        parts = urlsplit(url)
        self.database = parts.path.strip("/") or "default"
        for name in (self.database, table):
            if not _IDENTIFIER.match(name):
                raise ValueError(f"{name!r} is not a plain ClickHouse identifier")
        self.url = url
        self.table = f"`{self.database}`.`{table}`"
        self._table_name = table
        if source is not None and not isinstance(source, SourceTable):
            source = SourceTable.from_mapping(source)
        self.source = source
        self.mutation_timeout = mutation_timeout
        self._local = threading.local()
        self._clients: list[Client] = []
        self._clients_lock = threading.Lock()
        self._group_insert = GroupInsert(self._write)
        # The database may not exist yet, so create it through a connection to `default`.
        bootstrap = Client.from_url(urlunsplit(parts._replace(path="/default")))
        try:
            bootstrap.execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
            bootstrap.execute(_SCHEMA.format(table=self.table))
        except Exception as exc:  # the driver raises several unrelated types
            raise ConfigurationError(
                f"Cannot prepare the ClickHouse usage store at {parts.hostname}:"
                f"{parts.port or 9000}/{self.database}: {exc}"
            ) from exc
        finally:
            bootstrap.disconnect()

    # --- writes -------------------------------------------------------------------------

    def insert(self, events: Iterable[UsageEvent]) -> int:
        return sum(self.insert_columns(EventColumns.of(chunk)) for chunk in chunks(events, CHUNK))

    def insert_columns(self, columns: EventColumns) -> int:
        return self._group_insert(columns)

    def _write(self, columns: EventColumns, which: bool) -> tuple[int, list[bool] | None]:
        first: dict[str, int] = {}
        for row, event_id in enumerate(columns.event_id):
            first.setdefault(event_id, row)  # first in the batch wins
        if not first:
            return 0, []
        keep = [False] * len(columns)
        for row in first.values():
            keep[row] = True
        for row in self._stored_rows(columns, first):
            keep[row] = False
        fresh = columns.select(keep)
        if not len(fresh):
            return 0, keep
        self._client().execute(
            f"INSERT INTO {self.table} (event_id, tenant_id, metric, quantity, occurred_at,"
            " ingested_at, ver) VALUES",
            [fresh.event_id, fresh.tenant_id, fresh.metric, fresh.quantity, fresh.occurred_s,
             fresh.ingested_s, [_MAX_VER - time.time_ns()] * len(fresh)],
            columnar=True,
        )
        return len(fresh), keep

    def _stored_rows(self, columns: EventColumns, first: dict[str, int]) -> list[int]:
        """Rows (of `first`'s) whose id is already stored for the same tenants and days."""
        rows = [(event_id, columns.tenant_id[row], columns.metric[row])
                for event_id, row in first.items()]
        d0, d1 = (datetime.fromtimestamp(edge(columns.occurred_s), UTC).date().isoformat()
                  for edge in (min, max))
        stored = self._client().execute(
            f"SELECT DISTINCT event_id FROM {self.table} "
            "WHERE tenant_id IN (SELECT tenant_id FROM _batch) "
            "AND metric IN (SELECT metric FROM _batch) "
            "AND toDate(occurred_at) >= toDate(%(d0)s) AND toDate(occurred_at) <= toDate(%(d1)s) "
            "AND event_id IN (SELECT event_id FROM _batch)",
            {"d0": d0, "d1": d1},
            external_tables=[{
                "name": "_batch",
                "structure": [("event_id", "String"), ("tenant_id", "String"),
                              ("metric", "String")],
                "data": rows,
            }],
        )
        return [first[row[0]] for row in stored]

    def delete_events(self, event_ids: Iterable[str]) -> int:
        removed = 0
        client = self._client()
        for chunk in chunks(dict.fromkeys(event_ids), DELETE_CHUNK):
            ids = _ids_table(chunk)
            row = client.execute(
                f"SELECT uniqExact(event_id) FROM {self.table} "
                "WHERE event_id IN (SELECT event_id FROM _ids)",
                external_tables=[ids],
            )
            found = int(row[0][0]) if row else 0
            if not found:
                continue
            # Mutations run in the background and cannot see external tables: inline the ids.
            client.execute(
                f"ALTER TABLE {self.table} DELETE WHERE event_id IN %(ids)s",
                {"ids": tuple(chunk)},
            )
            removed += found
        if removed:
            self._wait_for_mutations()
        return removed

    def _wait_for_mutations(self) -> None:
        deadline = time.monotonic() + self.mutation_timeout
        while True:
            row = self._client().execute(
                "SELECT count() FROM system.mutations "
                "WHERE database = %(db)s AND table = %(table)s AND is_done = 0",
                {"db": self.database, "table": self._table_name},
            )
            if not row or not row[0][0]:
                return
            if time.monotonic() > deadline:
                raise MeterbillError(
                    f"ClickHouse has not finished deleting usage events from {self.table} "
                    f"after {self.mutation_timeout:.0f}s (see system.mutations; merges may be "
                    "stopped). The delete will still complete when the server runs it.",
                    code="usage_delete_pending",
                )
            time.sleep(0.05)

    # --- reads --------------------------------------------------------------------------

    def daily_totals(
        self, tenant_ids: Collection[str] | None, metric: str, start: datetime, end: datetime
    ) -> list[DailyTotal]:
        if tenant_ids is not None and not tenant_ids:
            return []
        sql, params, external = self._deduped(tenant_ids, metric, start, end)
        rows = self._client().execute(
            f"SELECT t, toDate(o) AS day, sum(q) FROM ({sql}) GROUP BY t, day ORDER BY t, day",
            params,
            external_tables=external,
        )
        return [DailyTotal(tenant, metric, day, int(total)) for tenant, day, total in rows]

    def total(self, tenant_id: str, metric: str, start: datetime, end: datetime) -> int:
        sql, params, external = self._deduped([tenant_id], metric, start, end)
        rows = self._client().execute(f"SELECT sum(q) FROM ({sql})", params,
                                      external_tables=external)
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def count_raw(self) -> int:
        rows = self._client().execute(f"SELECT count() FROM {self.table}")
        return int(rows[0][0])

    def _deduped(
        self, tenant_ids: Collection[str] | None, metric: str, start: datetime, end: datetime
    ) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        """SQL giving one row (t, q, o) per event_id in [start, end), the first ingestion."""
        low, high = require_aware(start, "start"), require_aware(end, "end")
        first_day = low.date()
        after_last_day = (high - timedelta(microseconds=1)).date() + timedelta(days=1)
        params: dict[str, Any] = {
            "metric": metric,
            "start": _seconds(low),
            "end": _seconds(high),
            "d0": first_day.isoformat(),
            "d1": (after_last_day - timedelta(days=1)).isoformat(),
            "t0": _seconds(_midnight(first_day)),
            "t1": _seconds(_midnight(after_last_day)),
        }
        external: list[dict[str, Any]] = []
        tenant_filter = ""
        if tenant_ids is not None:
            external.append({"name": "_tenants", "structure": [("tenant_id", "String")],
                             "data": [(t,) for t in set(tenant_ids)]})
            tenant_filter = " AND {col} IN (SELECT tenant_id FROM _tenants)"
        branches = [
            f"SELECT event_id, tenant_id, quantity, occurred_at, ver FROM {self.table} "
            "WHERE metric = %(metric)s "
            "AND toDate(occurred_at) >= toDate(%(d0)s) AND toDate(occurred_at) <= toDate(%(d1)s)"
            + tenant_filter.format(col="tenant_id")
        ]
        source = self._source_branch(metric)
        if source:
            branches.append(source + tenant_filter.format(col=self._source_tenant_column()))
        union = " UNION ALL ".join(branches)
        sql = (
            "SELECT t, q, o FROM ("
            "SELECT event_id, argMax(tenant_id, ver) AS t, argMax(quantity, ver) AS q, "
            f"argMax(occurred_at, ver) AS o FROM ({union}) GROUP BY event_id"
            ") WHERE o >= toDateTime(%(start)s, 'UTC') AND o < toDateTime(%(end)s, 'UTC')"
        )
        return sql, params, external

    def _source_branch(self, metric: str) -> str | None:
        src = self.source
        if src is None:
            return None
        if metric == "tokens":
            if src.tokens is None:
                return None
            quantity = f"toUInt64(`{src.tokens}`)"
        elif metric == "queries":
            quantity = "toUInt64(1)"
        else:
            return None
        table = f"`{src.database or self.database}`.`{src.table}`"
        ts = f"`{src.occurred_at}`"
        # Source rows rank above ours (highest ver): they are the original record.
        return (
            f"SELECT toString(`{src.event_id}`) AS event_id, "
            f"toString(`{src.tenant_id}`) AS tenant_id, {quantity} AS quantity, "
            f"toDateTime({ts}, 'UTC') AS occurred_at, toUInt64({_MAX_VER}) AS ver "
            f"FROM {table} WHERE {ts} >= toDateTime(%(t0)s) AND {ts} < toDateTime(%(t1)s)"
            + (f" AND `{src.tokens}` > 0" if metric == "tokens" else "")
        )

    def _source_tenant_column(self) -> str:
        assert self.source is not None
        return f"toString(`{self.source.tenant_id}`)"

    # --- connections --------------------------------------------------------------------

    def _client(self) -> Client:
        # clickhouse-driver clients are not thread-safe: one per thread.
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = Client.from_url(self.url)
            with self._clients_lock:
                self._clients.append(client)
            self._local.client = client
        return client

    def close(self) -> None:
        with self._clients_lock:
            for client in self._clients:
                client.disconnect()
            self._clients.clear()
        self._local = threading.local()


def _seconds(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _ids_table(ids: list[str]) -> dict[str, Any]:
    return {"name": "_ids", "structure": [("event_id", "String")], "data": [(i,) for i in ids]}
