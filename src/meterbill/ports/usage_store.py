"""What services need from a usage store, as a Protocol.

Adapters: `adapters.usage.duckdb_store` (the default, a file) and `adapters.usage.clickhouse_store`
(production); `adapters.usage.open_usage_store(url)` picks one. Both give the same answers:
every total is deduplicated by `event_id` (the first ingestion of an id wins), whatever the
store's physical state (ClickHouse merges remove duplicates only eventually).

Ranges are half-open, [start, end), on `occurred_at`, with timezone-aware datetimes; days are
UTC days.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Protocol

from ..domain.usage import DailyTotal, EventColumns, UsageEvent


class UsageStore(Protocol):
    def insert(self, events: Iterable[UsageEvent]) -> int:
        """Store the events; returns how many were new (an already stored `event_id` is skipped).

        Safe to repeat: re-inserting the same events changes no total.
        """
        ...

    def insert_columns(self, columns: EventColumns) -> int:
        """`insert` for events already in columns (the ingestion path): no object per event.
        Within the columns, as across calls, the first row of an `event_id` wins."""
        ...

    def daily_totals(
        self, tenant_ids: Collection[str] | None, metric: str, start: datetime, end: datetime
    ) -> Iterable[DailyTotal]:
        """Deduplicated totals per tenant and UTC day of events in [start, end), sorted by
        tenant then day. `tenant_ids=None` means every tenant; days without usage are absent."""
        ...

    def total(self, tenant_id: str, metric: str, start: datetime, end: datetime) -> int:
        """The tenant's deduplicated total of `metric` in [start, end)."""
        ...

    def delete_events(self, event_ids: Iterable[str]) -> int:
        """Remove events (fraud, test traffic); returns how many distinct ids were removed."""
        ...

    def count_raw(self) -> int:
        """Physical rows, duplicates not yet merged included: for diagnostics, never billing."""
        ...

    def close(self) -> None: ...
