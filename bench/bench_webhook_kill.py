"""Webhooks under a killed worker: 10,000 events, the Celery worker SIGKILLed twice meanwhile.

10,000 signed events are posted as fast as meterbill's app answers (32 concurrent senders, the
server a child process, Celery on Redis). While they arrive, the worker process is SIGKILLed
twice (after a third and after two thirds of the answers) and started again at once. Then the
benchmark waits until every event is handled and checks, from the database:

- the inbox: one row per event, every row `handled`;
- the handlers' effects: the events are of a type whose handler inserts one row into a table
  of its own (`bench_effects`, no unique key) in its transaction, so an event handled twice
  would show two rows, and one never handled, none. All 10,000 must have exactly one.

The worker is `meterbill worker`'s own code (`run_worker`, Celery threads pool, `--beat` for the
sweep) with that counting handler added; the handler first waits `--effect-ms` (a stand-in for
the Stripe call a real handler makes). Short leases and sweeps (`--lease`, `--sweep-after`,
`--sweep-interval`) bring the killed worker's rows back within seconds instead of minutes.
Printed: the time to send, the time until all were handled, rows claimed when each kill
happened, attempts per row, and the verdict.

Run: `python bench/bench_webhook_kill.py [--quick] [--n 10000] [--db pg|sqlite]
[--worker-concurrency 4] [--broker URL]`.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import bench_webhook_harness as h


def _effects_table(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE bench_effects (event_id VARCHAR(255) NOT NULL, "
                                "pid INTEGER NOT NULL)"))
    engine.dispose()


def _count(url: str, sql: str) -> list[Any]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql)))
    finally:
        engine.dispose()


def run(args: argparse.Namespace) -> bool:
    kind = "PostgreSQL" if args.db == "pg" else "SQLite"
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(h.database(kind, args.pg))
        spec = h.ServerSpec(database_url=url, runner="celery", broker=args.broker,
                            queue=f"meterbill-bench-{secrets.token_hex(4)}", counted=True,
                            effect_ms=args.effect_ms,
                            options={"lease_seconds": args.lease,
                                     "sweep_after_seconds": args.sweep_after,
                                     "sweep_interval_seconds": args.sweep_interval})
        stack.callback(h.purge_queue, args.broker, spec.queue)
        port, _ = stack.enter_context(h.server_process(spec))  # migrates the database
        _effects_table(url)
        log = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "worker.log"
        worker = h.Worker(spec, concurrency=args.worker_concurrency, beat=True, log=log)
        worker.start()
        stack.callback(lambda: worker.stop())

        run_id = secrets.token_hex(3)
        prefix = f"evt_bench_{run_id}_"
        # The worker is up (imports, connections) before the clock starts.
        warm_id = secrets.token_hex(3)
        warm = h.http_requests(port, "/webhooks/stripe", h.counted_events(1, warm_id))
        h.blast(port, warm, 1)
        h.wait_until_done(url, f"evt_bench_{warm_id}_", 1, timeout=120, done=("handled",))
        requests = h.http_requests(port, "/webhooks/stripe", h.counted_events(args.n, run_id))
        print(f"{kind}: {args.n} events, worker with {args.worker_concurrency} threads, killed "
              f"after {args.n // 3} and {2 * args.n // 3} answers; {h.load_average()}")

        progress = [0]
        kills: list[str] = []

        def committed() -> int:
            return int(_count(url, "SELECT count(*) FROM bench_effects")[0][0])

        def killer() -> None:
            for mark in (args.n // 3, 2 * args.n // 3):
                while progress[0] < mark:
                    time.sleep(0.005)
                # Kill it mid-handling: once the (restarted) worker has got going again.
                before = committed()
                while committed() < min(before + 20, args.n + 1):
                    time.sleep(0.01)
                claimed = _count(url, "SELECT count(*) FROM webhook_events "
                                      "WHERE status = 'processing'")[0][0]
                done = committed()
                worker.kill()
                kills.append(f"after {progress[0]} answers, {time.perf_counter() - start:.1f} s "
                             f"in: {claimed} row(s) claimed, {done} effects committed")
                worker.start()

        start = time.perf_counter()
        watcher = threading.Thread(target=killer, daemon=True)
        watcher.start()
        sent = h.blast(port, requests, args.concurrency, progress=progress)
        watcher.join()
        summary = sent.summary()
        print(f"  sent in {sent.seconds:.1f} s ({summary['rps']:.0f}/s): ack p50 "
              f"{summary['p50_ms']:.1f} ms, p99 {summary['p99_ms']:.1f} ms, non-200 "
              f"{summary['non_200']}")
        for n, line in enumerate(kills, 1):
            print(f"  SIGKILL {n}: {line}")
        try:
            h.wait_until_done(url, prefix, args.n, timeout=args.timeout, done=("handled",))
            finished = True
        except TimeoutError as error:
            finished = False
            print(f"  NOT all handled: {error}")
        total = time.perf_counter() - start
        rows = _count(url, "SELECT status, attempts, count(*) FROM webhook_events "
                           f"WHERE event_id LIKE '{prefix}%' GROUP BY status, attempts "
                           "ORDER BY status, attempts")
        effects = dict(_count(url, "SELECT n, count(*) FROM (SELECT event_id, count(*) AS n "
                                   "FROM bench_effects WHERE event_id LIKE "
                                   f"'{prefix}%' GROUP BY event_id) AS per_event GROUP BY n"))
        events_with_effect = sum(effects.values())
        twice = sum(count for n, count in effects.items() if n > 1)
        inbox_rows = sum(count for _, _, count in rows)
        handled = sum(count for status, _, count in rows if status == "handled")
        print(f"  all handled {total:.1f} s after the first was sent" if finished else
              f"  gave up after {total:.1f} s")
        print("  inbox rows (status, attempts, rows): "
              + ", ".join(f"({s}, {a}, {c})" for s, a, c in rows))
        print(f"  effects per event: {dict(sorted(effects.items()))} (effects -> events)")
        by_process = _count(url, "SELECT pid, count(*) FROM bench_effects GROUP BY pid "
                                 "ORDER BY pid")
        print("  effects per worker process: " + ", ".join(f"pid {pid}: {n}"
                                                           for pid, n in by_process))
        ok = (finished and inbox_rows == args.n and handled == args.n
              and events_with_effect == args.n and effects.get(1, 0) == args.n and twice == 0)
        print(f"  verdict: {'PASS' if ok else 'FAIL'}: {handled} of {args.n} handled, "
              f"{effects.get(1, 0)} with exactly one effect, {args.n - events_with_effect} "
              f"with none, {twice} with more than one; {h.load_average()}")
        return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 events (about a minute)")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent senders")
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument("--effect-ms", type=float, default=5.0,
                        help="the handler's stand-in for a Stripe call")
    parser.add_argument("--lease", type=float, default=10.0, help="claim lease, seconds")
    parser.add_argument("--sweep-after", type=float, default=20.0,
                        help="a received row this old is dispatched again by the sweep")
    parser.add_argument("--sweep-interval", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=1200.0,
                        help="seconds to wait for every event to be handled")
    parser.add_argument("--db", choices=["pg", "sqlite"],
                        help="default: PostgreSQL when a URL is known, else SQLite")
    parser.add_argument("--pg", help="PostgreSQL URL (a schema is made and dropped); default "
                        "METERBILL_BENCH_DATABASE_URL or METERBILL_TEST_DATABASE_URL")
    parser.add_argument("--broker", default=h.redis_url(), help="Celery broker")
    args = parser.parse_args()
    args.pg = h.pg_base_url(args.pg)
    h.stop_on_sigterm()
    args.db = args.db or ("pg" if args.pg else "sqlite")
    if args.quick:
        args.n, args.timeout = 1000, 120.0
    sys.exit(0 if run(args) else 1)


if __name__ == "__main__":
    main()
