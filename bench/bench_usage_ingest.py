"""Usage events inserted per second directly into each store (no HTTP, no parsing).

DuckDB (a temporary file) always; ClickHouse when METERBILL_TEST_CLICKHOUSE_URL is set (a
database of its own, dropped afterwards). Events: 1,000 tenants, spread over the last 3 days,
every id new, inserted in batches of 10,000 (one API batch). Only `store.insert` is timed;
building the events is not. The DuckDB figure is compared with DESIGN.md's ~1.2 M rows/s.

Run: `python bench/bench_usage_ingest.py [--n 1000000] [--batch 10000]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from meterbill.adapters.usage.duckdb_store import DuckDBUsageStore
from meterbill.domain.usage import UsageEvent
from meterbill.services.usage_ports import UsageStore

DESIGN_DUCKDB_ROWS_PER_S = 1_200_000.0
TENANTS = 1000


def batches(n: int, size: int, seed: str) -> Iterator[list[UsageEvent]]:
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=3)
    spread = 3 * 86400
    for first in range(0, n, size):
        yield [
            UsageEvent(f"{seed}-{i:010d}", f"tenant_{i % TENANTS:04d}", "queries", 1 + i % 5,
                       start + timedelta(seconds=(i * 7919) % spread), now)
            for i in range(first, min(n, first + size))
        ]


def measure(store: UsageStore, n: int, size: int) -> float:
    """Events per second over the timed inserts only."""
    seconds = 0.0
    new = 0
    for batch in batches(n, size, uuid.uuid4().hex[:8]):
        started = time.perf_counter()
        new += store.insert(batch)
        seconds += time.perf_counter() - started
    if new != n or store.count_raw() != n:
        raise SystemExit(f"expected {n} new rows, store says {new} / {store.count_raw()}")
    return n / seconds


def run_duckdb(n: int, size: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBUsageStore(Path(tmp) / "bench.duckdb")
        try:
            return measure(store, n, size)
        finally:
            store.close()


def run_clickhouse(url: str, n: int, size: int) -> float:
    from clickhouse_driver import Client

    from meterbill.adapters.usage.clickhouse_store import ClickHouseUsageStore

    parts = urlsplit(url)
    name = f"meterbill_bench_{uuid.uuid4().hex[:8]}"
    store = ClickHouseUsageStore(urlunsplit(parts._replace(path=f"/{name}")))
    try:
        return measure(store, n, size)
    finally:
        store.close()
        admin = Client.from_url(urlunsplit(parts._replace(path="/default")))
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="events per store")
    parser.add_argument("--batch", type=int, default=10_000, help="events per insert call")
    args = parser.parse_args()

    runs: list[tuple[str, Callable[[], float], float | None]] = [
        ("duckdb", lambda: run_duckdb(args.n, args.batch), DESIGN_DUCKDB_ROWS_PER_S)]
    url = os.environ.get("METERBILL_TEST_CLICKHOUSE_URL")
    if url:
        runs.append(("clickhouse", lambda: run_clickhouse(url, args.n, args.batch), None))
    else:
        print("(ClickHouse skipped: set METERBILL_TEST_CLICKHOUSE_URL, see .ci/clickhouse.sh)")

    print(f"{'store':<12}{'events':>10}{'events/s':>12}{'DESIGN.md':>12}{'ratio':>8}")
    for name, run, target in runs:
        rate = run()
        versus = f"{target:>12,.0f}{rate / target:>7.2f}x" if target else f"{'-':>12}{'-':>8}"
        print(f"{name:<12}{args.n:>10,}{rate:>12,.0f}{versus}")


if __name__ == "__main__":
    main()
