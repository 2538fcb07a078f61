"""Usage ingestion against its ceilings, every figure a ratio measured in the same run.

1. Store: DuckDB's raw load of the events from Arrow into an unkeyed table (the ceiling), the
   store's deduplicating `insert_columns`, and the other ways to dedupe that were measured
   (a key on a 64-bit hash of the id, a separate id table). Events: 1,000 tenants over 3 days,
   ids random UUIDs (as clients make them), batches of 10,000; building them is not timed.
   ClickHouse's store too when METERBILL_TEST_CLICKHOUSE_URL is set.
2. Checking a batch, µs per event: `json.loads` + the domain's `parse_event` per event (the
   slow path) against msgspec's decode + `to_columns` (the fast path), and DuckDB's own JSON
   reader loading the same body into an unkeyed table.
3. `POST /usage/events` of the real app on uvicorn in child processes (SQLite with the tenants,
   bearer token), bodies of 10,000 and of 100 events serialised beforehand, sent from
   keep-alive connections: one process on a DuckDB file; one and two processes on ClickHouse.
4. Backfill: a JSON-lines and a CSV file through `ingest_file` against the store's own rate.
5. Memory: peak Python allocation (tracemalloc) while ingesting one body.

Run: `python bench/bench_usage_ingest.py [--n 1000000] [--http-n 200000] [--repeat 3]`
(`--quick`: a short run). `--profile` prints where one 10,000-event body's time goes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import duckdb
import pyarrow as pa

from meterbill.adapters.usage.duckdb_store import DuckDBUsageStore
from meterbill.domain.usage import EventColumns
from meterbill.ports.usage_store import UsageStore

TENANTS = 1000
TARGET_HTTP = 100_000.0
TARGET_STORE_RATIO = 0.7


def batches(n: int, size: int) -> Iterator[EventColumns]:
    now = int(datetime.now(UTC).timestamp())
    spread = 3 * 86400
    for first in range(0, n, size):
        rows = range(first, min(n, first + size))
        yield EventColumns([str(uuid.uuid4()) for _ in rows],
                           [f"tenant_{i % TENANTS:04d}" for i in rows], ["queries"] * len(rows),
                           [1 + i % 5 for i in rows],
                           [now - spread + (i * 7919) % spread for i in rows], [now] * len(rows))


def arrow(columns: EventColumns) -> pa.Table:
    return pa.table({
        "event_id": pa.array(columns.event_id, pa.string()),
        "tenant_id": pa.array(columns.tenant_id, pa.string()),
        "metric": pa.array(columns.metric, pa.string()),
        "quantity": pa.array(columns.quantity, pa.int64()),
        "occurred_at": pa.array(columns.occurred_s, pa.int64()).cast(pa.timestamp("s")),
        "ingested_at": pa.array(columns.ingested_s, pa.int64()).cast(pa.timestamp("s")),
    })


# --- 1. the store against DuckDB's raw load ------------------------------------------------

_COLUMNS = ("event_id VARCHAR, tenant_id VARCHAR, metric VARCHAR, quantity BIGINT, "
            "occurred_at TIMESTAMP, ingested_at TIMESTAMP")
# Other ways to dedupe, as (DDL, insert of the Arrow table `b`): what was measured, not used.
DEDUPE_OPTIONS = {
    "raw load, unkeyed (the ceiling)": (f"CREATE TABLE t ({_COLUMNS})",
                                        "INSERT INTO t SELECT * FROM b"),
    "key on a 64-bit hash of event_id": (
        f"CREATE TABLE t (h UBIGINT PRIMARY KEY, {_COLUMNS})",
        "INSERT INTO t SELECT md5_number_lower(event_id), * FROM b ON CONFLICT DO NOTHING"),
    "separate id table + unkeyed events": (
        f"CREATE TABLE t ({_COLUMNS}); CREATE TABLE ids (event_id VARCHAR PRIMARY KEY)",
        "INSERT INTO ids SELECT event_id FROM b ON CONFLICT DO NOTHING; "
        "INSERT INTO t SELECT * FROM b"),
}


def load_sql(data: list[EventColumns], ddl: str, insert: str) -> float:
    """Rows/s of `insert` over every batch (as Arrow, converted before the clock starts)."""
    tables = [arrow(columns) for columns in data]
    with tempfile.TemporaryDirectory() as tmp:
        conn = duckdb.connect(str(Path(tmp) / "raw.duckdb"))
        conn.execute(ddl)
        started = time.perf_counter()
        for table in tables:
            conn.register("b", table)
            conn.execute(insert)
            conn.unregister("b")
        seconds = time.perf_counter() - started
        conn.close()
    return sum(len(c) for c in data) / seconds


def load_store(store: UsageStore, data: list[EventColumns]) -> float:
    """Events/s of `store.insert_columns` (the Arrow conversion included: it is the store's)."""
    started = time.perf_counter()
    new = sum(store.insert_columns(columns) for columns in data)
    seconds = time.perf_counter() - started
    n = sum(len(c) for c in data)
    if new != n or store.count_raw() != n:
        raise SystemExit(f"expected {n} new rows, the store says {new} / {store.count_raw()}")
    return n / seconds


def duckdb_store_rate(data: list[EventColumns]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBUsageStore(Path(tmp) / "bench.duckdb")
        try:
            return load_store(store, data)
        finally:
            store.close()


def clickhouse_store_rate(url: str, data: list[EventColumns]) -> float:
    from meterbill.adapters.usage.clickhouse_store import ClickHouseUsageStore

    with clickhouse_database(url) as db_url:
        store = ClickHouseUsageStore(db_url)
        try:
            return load_store(store, data)
        finally:
            store.close()


class clickhouse_database:  # noqa: N801 - used as a context manager, like a function
    """A ClickHouse database of its own, dropped afterwards."""

    def __init__(self, url: str) -> None:
        self.parts = urlsplit(url)
        self.name = f"meterbill_bench_{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> str:
        return urlunsplit(self.parts._replace(path=f"/{self.name}"))

    def __exit__(self, *exc: object) -> None:
        from clickhouse_driver import Client

        admin = Client.from_url(urlunsplit(self.parts._replace(path="/default")))
        admin.execute(f"DROP DATABASE IF EXISTS {self.name}")
        admin.disconnect()


def run_store(n: int, size: int, repeat: int, clickhouse_url: str | None) -> None:
    print(f"\n1. Store ingestion, {n:,} events in batches of {size:,} (random UUID ids); "
          f"rows/s, {repeat} rounds interleaved")
    names = [*DEDUPE_OPTIONS, "meterbill DuckDB store (key on event_id)"]
    if clickhouse_url:
        names.append("meterbill ClickHouse store")
    rates: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeat):
        data = list(batches(n, size))
        for name, (ddl, insert) in DEDUPE_OPTIONS.items():
            rates[name].append(load_sql(data, ddl, insert))
        rates["meterbill DuckDB store (key on event_id)"].append(duckdb_store_rate(data))
        if clickhouse_url:
            rates["meterbill ClickHouse store"].append(clickhouse_store_rate(clickhouse_url, data))
    ceiling = rates[names[0]]
    print(f"{'':<44}{'rows/s (median)':>16}{'ratio per round':>24}")
    for name in names:
        ratios = " ".join(f"{r / c:.2f}x" for r, c in zip(rates[name], ceiling, strict=True))
        print(f"{name:<44}{statistics.median(rates[name]):>16,.0f}{ratios:>24}")
    print(f"(target for the DuckDB store: >= {TARGET_STORE_RATIO}x of the raw load)")


# --- 2. checking a batch ---------------------------------------------------------------------


def body_of(columns: EventColumns) -> bytes:
    return json.dumps({"events": [
        {"event_id": e, "tenant_id": t, "quantity": q,
         "timestamp": datetime.fromtimestamp(o, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        for e, t, q, o in zip(columns.event_id, columns.tenant_id, columns.quantity,
                              columns.occurred_s, strict=True)]}).encode()


def run_parsing(size: int, repeat: int) -> None:
    from meterbill.domain.usage import parse_event
    from meterbill.services.usage.fast_batch import decode_body, raw_events_of, to_columns

    body = body_of(next(batches(size, size)))
    now = datetime.now(UTC)

    def slow() -> None:
        for index, raw in enumerate(json.loads(body)["events"]):
            parse_event(raw, index, now=now)

    def fast() -> None:
        events = decode_body(body)
        assert events is not None
        columns, _, errors = to_columns(events, raw_events_of(body), now)
        assert len(columns) == size and not errors

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "body.json"
        path.write_bytes(b"\n".join(json.dumps(e).encode() for e in json.loads(body)["events"]))
        conn = duckdb.connect()
        conn.execute(f"CREATE TABLE t ({_COLUMNS.replace('ingested_at TIMESTAMP', '')[:-2]})")

        def duck() -> None:
            conn.execute("DELETE FROM t")
            conn.execute(f"INSERT INTO t SELECT event_id, tenant_id, 'queries', quantity, "
                         f"timestamp FROM read_json('{path}', format='newline_delimited')")

        timings: dict[str, Callable[[], None]] = {
            "json.loads + parse_event per event (slow path)": slow,
            "msgspec decode + to_columns (fast path)": fast,
            "DuckDB read_json into a table (reference)": duck,
        }
        print(f"\n2. Checking one body of {size:,} events, µs per event (best of {repeat * 3})")
        for name, run in timings.items():
            best = min(_timed(run) for _ in range(repeat * 3))
            print(f"  {name:<50}{best / size * 1e6:>8.2f}")
        conn.close()


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


# --- 3. through POST /usage/events -----------------------------------------------------------

TOKEN = "bench-token-0123456789"


def serve(workdir: str, store_url: str, port_file: str) -> None:
    """A child process: meterbill's app on uvicorn, 1,000 tenants in its own SQLite file."""
    import uvicorn

    from meterbill.adapters.db.repositories import TenantRepository
    from meterbill.bootstrap import build
    from meterbill.config import Settings
    from meterbill.entrypoints.api import create_app

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=f"sqlite:///{workdir}/bench.db",
        usage_store_url=store_url, stripe_secret_key=None,
        stripe_api_base=None, meterbill_api_token=TOKEN, log_level="WARNING")
    container = build(settings)
    container.upgrade_db()
    with container.db.session() as session:
        tenants = TenantRepository(session)
        for i in range(TENANTS):
            tenants.claim_customer(f"tenant_{i:04d}", None, None, f"cus_bench{i:04d}")
    config = uvicorn.Config(create_app(container), host="127.0.0.1", port=0,
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started:
            time.sleep(0.01)
        Path(port_file).write_text(str(server.servers[0].sockets[0].getsockname()[1]))

    threading.Thread(target=announce, daemon=True).start()
    server.run()


class Servers:
    """`count` server processes on one usage store, each with its own SQLite tenants."""

    def __init__(self, store_url: str, count: int) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.children: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        for i in range(count):
            work = Path(self.tmp.name) / f"s{i}"
            work.mkdir()
            port_file = work / "port"
            url = store_url.replace("{tmp}", str(work))
            self.children.append(subprocess.Popen(
                [sys.executable, __file__, "--serve", str(work), url, str(port_file)]))
            deadline = time.monotonic() + 120
            while not port_file.exists() or not port_file.read_text():
                if self.children[-1].poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise SystemExit("a meterbill server did not start")
                time.sleep(0.05)
            self.ports.append(int(port_file.read_text()))

    def close(self) -> None:
        for child in self.children:
            child.terminate()
            child.wait(30)
        self.tmp.cleanup()


def send(ports: list[int], bodies: list[bytes], senders: int) -> tuple[float, int]:
    """Post every body from `senders` keep-alive connections spread over the ports; (seconds,
    events stored)."""
    stored = [0]
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(senders + 1)

    def sender(port: int, mine: list[bytes]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        barrier.wait()
        for body in mine:
            connection.request("POST", "/usage/events", body=body, headers={
                "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
            answer = connection.getresponse()
            data = json.loads(answer.read())
            with lock:
                if answer.status != 200 or data["rejected"]:
                    failures.append(f"{answer.status}: {str(data)[:300]}")
                else:
                    stored[0] += data["stored"]
        connection.close()

    threads = [threading.Thread(target=sender, args=(ports[i % len(ports)], bodies[i::senders]))
               for i in range(senders)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise SystemExit(f"POST /usage/events failed: {failures[0]}")
    return seconds, stored[0]


def http_rate(servers: Servers, n: int, size: int, senders: int) -> float:
    bodies = [body_of(columns) for columns in batches(n, size)]
    seconds, stored = send(servers.ports, bodies, senders)
    if stored != n:
        raise SystemExit(f"expected {n} events stored, the API says {stored}")
    return n / seconds


def run_http(n: int, repeat: int, clickhouse_url: str | None) -> None:
    print(f"\n3. POST /usage/events, {n:,} events per run, events/s (target "
          f"{TARGET_HTTP:,.0f}); ceiling: DuckDB's raw load of the same number, same round")
    setups: list[tuple[str, str, int]] = [("DuckDB file, 1 process", "duckdb:///{tmp}/u.duckdb",
                                           1)]
    contexts: list[clickhouse_database] = []
    if clickhouse_url:
        for count in (1, 2):
            context = clickhouse_database(clickhouse_url)
            contexts.append(context)
            setups.append((f"ClickHouse, {count} process{'es' if count > 1 else ''}",
                           context.__enter__(), count))
    try:
        print(f"{'setup':<28}{'body':>8}{'senders':>9}{'events/s':>12}{'x target':>10}"
              f"{'x ceiling':>11}")
        for name, url, count in setups:
            servers = Servers(url, count)
            try:
                send(servers.ports, [body_of(c) for c in batches(20_000, 10_000)], 1)  # warm
                for size, senders in ((10_000, 2 * count), (100, 4 * count)):
                    for _ in range(repeat):
                        ceiling = load_sql(list(batches(n, 10_000)),
                                           *DEDUPE_OPTIONS["raw load, unkeyed (the ceiling)"])
                        rate = http_rate(servers, n if size > 100 else n // 4, size, senders)
                        print(f"{name:<28}{size:>8,}{senders:>9}{rate:>12,.0f}"
                              f"{rate / TARGET_HTTP:>9.2f}x{rate / ceiling:>10.2f}x", flush=True)
            finally:
                servers.close()
    finally:
        for context in contexts:
            context.__exit__()


# --- 4. backfill: `meterbill usage ingest FILE` ----------------------------------------------


def run_backfill(n: int, repeat: int) -> None:
    import csv

    from meterbill.services.usage.ingest import UsageIngestService

    print(f"\n4. Backfill, {n:,} events from a file (`UsageIngestService.ingest_file`, as "
          "`meterbill usage ingest FILE` runs it)\n   against the store's own `insert_columns` "
          "of the same events in the same round (DuckDB file)")
    print(f"{'file':<8}{'events/s':>12}{'store':>12}{'ratio':>8}")
    for _ in range(repeat):
        data = list(batches(n, 10_000))
        rows = [{"event_id": e, "tenant_id": t, "quantity": q,
                 "timestamp": datetime.fromtimestamp(o, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
                for c in data for e, t, q, o in zip(c.event_id, c.tenant_id, c.quantity,
                                                    c.occurred_s, strict=True)]
        with tempfile.TemporaryDirectory() as tmp:
            files = {"jsonl": Path(tmp) / "e.jsonl", "csv": Path(tmp) / "e.csv"}
            files["jsonl"].write_text("".join(json.dumps(row) + "\n" for row in rows))
            with files["csv"].open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
            for kind, path in files.items():
                store = DuckDBUsageStore(Path(tmp) / f"{kind}.duckdb")
                service = UsageIngestService(store, lambda ids: set(ids))
                started = time.perf_counter()
                result = service.ingest_file(path)
                rate = n / (time.perf_counter() - started)
                store.close()
                if result.stored != n:
                    raise SystemExit(f"expected {n} events from {kind}, stored {result.stored}")
                own = duckdb_store_rate(list(batches(n, 10_000)))
                print(f"{kind:<8}{rate:>12,.0f}{own:>12,.0f}{rate / own:>7.2f}x", flush=True)


# --- 5. memory and profile -------------------------------------------------------------------


def run_memory() -> None:
    from meterbill.services.usage.ingest import UsageIngestService

    print("\n5. Peak Python memory while ingesting one body (tracemalloc), DuckDB in memory")
    print(f"{'body':>8}{'bytes':>12}{'HTTP body':>12}{'list':>12}")
    for size in (10_000, 100):
        body = body_of(next(batches(size, size)))
        peaks = []
        for fast in (True, False):
            store = DuckDBUsageStore(":memory:")
            service = UsageIngestService(store, lambda ids: set(ids))
            tracemalloc.start()
            if fast:
                service.ingest_json(body)
            else:
                service.ingest([dict(e) for e in json.loads(body)["events"]])
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            store.close()
        print(f"{size:>8,}{len(body):>12,}{peaks[0] / 2**20:>10.1f} MiB"
              f"{peaks[1] / 2**20:>10.1f} MiB")
    print("(HTTP body: `ingest_json`, msgspec structs; list: the same events decoded by `json` "
          "and given to `ingest`, as files and non-plain bodies are)")


def run_profile() -> None:
    from pyinstrument import Profiler

    from meterbill.services.usage.ingest import UsageIngestService

    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBUsageStore(Path(tmp) / "p.duckdb")
        service = UsageIngestService(store, lambda ids: set(ids))
        bodies = [body_of(c) for c in batches(200_000, 10_000)]
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for body in bodies:
            service.ingest_json(body)
        profiler.stop()
        store.close()
    print("\nProfile: `UsageIngestService.ingest_json`, 20 bodies of 10,000 events")
    print(profiler.output_text(show_all=False, color=False))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="events per store run")
    parser.add_argument("--http-n", type=int, default=200_000, help="events per HTTP run "
                        "(a quarter of it with 100-event bodies); 0 to skip")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each measure")
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--profile", action="store_true", help="profile one path and stop")
    args = parser.parse_args()
    if args.profile:
        run_profile()
        return
    if args.quick:
        args.n, args.http_n, args.repeat = 100_000, 40_000, 1
    url = os.environ.get("METERBILL_TEST_CLICKHOUSE_URL")
    if not url:
        print("(ClickHouse skipped: set METERBILL_TEST_CLICKHOUSE_URL, see .ci/clickhouse.sh)")
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    run_store(args.n, 10_000, args.repeat, url)
    run_parsing(10_000, args.repeat)
    if args.http_n:
        run_http(args.http_n, args.repeat, url)
    run_backfill(args.n // 4, args.repeat)
    run_memory()
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
