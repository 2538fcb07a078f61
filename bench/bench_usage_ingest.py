"""Usage events inserted per second directly into each store (no HTTP, no parsing).

DuckDB (a temporary file) always; ClickHouse when METERBILL_TEST_CLICKHOUSE_URL is set (a
database of its own, dropped afterwards). Events: 1,000 tenants, spread over the last 3 days,
every id new, inserted in batches of 10,000 (one API batch). Only `store.insert` is timed;
building the events is not. The DuckDB figure is compared with DESIGN.md's ~1.2 M rows/s.

Then the same kind of events through `POST /usage/events` of the real app on a uvicorn server
in a child process (SQLite with the 1,000 tenants, DuckDB file store, bearer token): request
bodies are serialised before the clock starts; the time covers HTTP, JSON decoding, every
event's checks, the tenant look-ups and the insert. Printed as events/s and as a ratio to the
direct DuckDB figure measured (same number of events, a fresh file) just before each HTTP run,
for 1 sender and for `--http-concurrency` senders.

Run: `python bench/bench_usage_ingest.py [--n 1000000] [--batch 10000] [--http-n 200000]`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from meterbill.adapters.usage.duckdb_store import DuckDBUsageStore
from meterbill.domain.usage import UsageEvent
from meterbill.ports.usage_store import UsageStore

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


# --- checking a batch: the domain's parser against a pydantic model -----------------------


def measure_parsing(size: int, rounds: int = 5) -> dict[str, float]:
    """Microseconds per event (best of `rounds`) to check one API batch of `size` events:
    `json.loads` alone; `json.loads` + `parse_event` per event (what the API does); and a
    pydantic model per event validated from the raw JSON (the alternative not taken)."""
    from pydantic import BaseModel, ConfigDict, Field

    from meterbill.domain.usage import parse_event

    class Event(BaseModel):
        model_config = ConfigDict(extra="forbid")
        event_id: str = Field(min_length=1, max_length=255)
        tenant_id: str = Field(min_length=1, max_length=255)
        metric: str = "queries"
        quantity: int = Field(default=1, gt=0)
        timestamp: datetime

    class Batch(BaseModel):
        events: list[Event] = Field(max_length=10_000)

    body = _bodies(size, size)[0]
    now = datetime.now(UTC)

    def domain() -> None:
        for index, raw in enumerate(json.loads(body)["events"]):
            parse_event(raw, index, now=now)

    timings = {"json.loads": lambda: json.loads(body), "json.loads + parse_event": domain,
               "pydantic model per event": lambda: Batch.model_validate_json(body)}
    result = {}
    for name, run in timings.items():
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - started)
        result[name] = best / size * 1e6
    return result


# --- through POST /usage/events ------------------------------------------------------------

TOKEN = "bench-token-0123456789"


def serve(workdir: str, port_file: str) -> None:
    """The child process: meterbill's app on uvicorn, 1,000 tenants in its database."""
    import uvicorn

    from meterbill.adapters.db.repositories import TenantRepository
    from meterbill.bootstrap import build
    from meterbill.config import Settings
    from meterbill.entrypoints.api import create_app

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=f"sqlite:///{workdir}/bench.db",
        usage_store_url=f"duckdb:///{workdir}/usage.duckdb", stripe_secret_key=None,
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


def _bodies(n: int, size: int) -> list[bytes]:
    return [json.dumps({"events": [
        {"event_id": e.event_id, "tenant_id": e.tenant_id, "quantity": e.quantity,
         "timestamp": e.occurred_at.isoformat().replace("+00:00", "Z")} for e in batch]}).encode()
        for batch in batches(n, size, uuid.uuid4().hex[:8])]


def _send(port: int, bodies: list[bytes], concurrency: int) -> tuple[float, int]:
    """Post every body from `concurrency` keep-alive connections; (seconds, events stored)."""
    stored = [0]
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)

    def sender(mine: list[bytes]) -> None:
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

    threads = [threading.Thread(target=sender, args=(bodies[i::concurrency],))
               for i in range(concurrency)]
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


def run_http(n: int, size: int, concurrency: int) -> list[tuple[int, float, float]]:
    """(senders, events/s, direct DuckDB events/s just before) for 1 and `concurrency`
    senders, on one server."""
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        child = subprocess.Popen([sys.executable, __file__, "--serve", tmp, str(port_file)])
        try:
            deadline = time.monotonic() + 60
            while not port_file.exists() or not port_file.read_text():
                if child.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the meterbill server did not start")
                time.sleep(0.05)
            port = int(port_file.read_text())
            _send(port, _bodies(min(n, 2 * size), size), 1)  # warm up
            rates = []
            for senders in sorted({1, concurrency}):
                # The direct figure is measured right before, so both see the same machine.
                direct = run_duckdb(n, size)
                bodies = _bodies(n, size)
                seconds, stored = _send(port, bodies, senders)
                if stored != n:
                    raise SystemExit(f"expected {n} events stored, the API says {stored}")
                rates.append((senders, n / seconds, direct))
            return rates
        finally:
            child.terminate()
            child.wait(30)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="events per store")
    parser.add_argument("--batch", type=int, default=10_000, help="events per insert call")
    parser.add_argument("--http-n", type=int, default=200_000,
                        help="events through POST /usage/events (0 to skip)")
    parser.add_argument("--http-concurrency", type=int, default=4,
                        help="concurrent senders in the second HTTP run")
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
    print(f"\nChecking one batch of {args.batch:,} events (best of 5), microseconds per event")
    for name, micros in measure_parsing(args.batch).items():
        print(f"  {name:<28}{micros:>8.1f}")
    if args.http_n:
        print(f"\nPOST /usage/events (uvicorn, SQLite tenants, DuckDB file), batches of "
              f"{args.batch:,}")
        print(f"{'senders':<12}{'events':>10}{'events/s':>12}{'direct':>12}{'ratio':>8}"
              "   (direct: DuckDB, same events, measured just before)")
        for senders, rate, base in run_http(args.http_n, args.batch, args.http_concurrency):
            print(f"{senders:<12}{args.http_n:>10,}{rate:>12,.0f}{base:>12,.0f}"
                  f"{rate / base:>7.2f}x")


if __name__ == "__main__":
    main()
