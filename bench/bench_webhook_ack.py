"""Webhook acknowledgement: latency p50/p99 and requests/s at 32 concurrent senders.

`POST /webhooks/stripe` of meterbill's real app (rate limiter, signature check, inbox insert,
commit, then the task handoff) against a bare FastAPI endpoint that reads the body and answers
200, both on the same uvicorn process in the same run. Targets: p99 under 50 ms, throughput at
least half of the bare endpoint's.

The server is a child process; the load generator is this process (asyncio on raw keep-alive
sockets, requests signed before the clock starts), and measures both endpoints the same way.
Each configuration runs `--rounds` rounds of (bare, webhook); the medians are reported. The
machine's load average is printed with each configuration: on a shared machine figures move.

Configurations, on SQLite (a temporary file) and on PostgreSQL (a fresh schema, when a URL is
given or METERBILL_TEST_DATABASE_URL is set):
- `stored`: `product.created`, a type without handler: stored as ignored, no task;
- `inline`: `invoice.paid` for tenants that exist (a Stripe sandbox over HTTP in a process of its
  own), handled by the inline runner's threads in the server process while the senders run;
- `queued`: the same events handed to Celery on Redis, no worker running meanwhile (as with
  workers on other machines); a `meterbill worker` started afterwards handles them all;
- `celery`: the same, with a `meterbill worker` process handling them on this machine meanwhile.
With handlers running (`inline`, `celery`), the bare endpoint is measured once, on an idle
server, before the first webhook round; the webhook rounds follow back to back while the
handlers work through their backlog. The CPU each process used while the webhooks were sent is
printed as well, and in the end the time until every event was handled.

Run: `python bench/bench_webhook_ack.py [--quick] [--n 2000] [--rounds 3] [--concurrency 32]
[--configs stored,inline,celery] [--db both|sqlite|pg] [--pg URL] [--gc-tuned]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import bench_webhook_harness as h

P99_TARGET_MS = 50.0
THROUGHPUT_TARGET_RATIO = 0.5

DESCRIPTIONS = {
    "stored": "product.created, stored only (no handler)",
    "inline": "invoice.paid, handled by the inline runner in the server meanwhile",
    "celery": "invoice.paid, handed to Celery (Redis); a worker process on this machine "
              "handles them meanwhile",
    "queued": "invoice.paid, handed to Celery (Redis); no worker meanwhile (workers on other "
              "machines), one started afterwards to handle them",
}


def measure(kind: str, config: str, args: argparse.Namespace) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(h.database(kind, args.pg))
        processes: dict[str, int] = {"load generator": os.getpid()}
        sandbox_url = None
        tenants = None
        if config != "stored":
            sandbox_url, sandbox = stack.enter_context(h.sandbox_process())
            processes["sandbox"] = sandbox.pid
            tenants = h.prepare_tenants(url, sandbox_url, args.tenants)
        spec = h.ServerSpec(database_url=url, sandbox_url=sandbox_url,
                            gc_tuned=args.gc_tuned)
        if config in ("celery", "queued"):
            spec.runner, spec.broker = "celery", args.broker
            spec.queue = f"meterbill-bench-{secrets.token_hex(4)}"
            stack.callback(h.purge_queue, args.broker, spec.queue)
        port, server = stack.enter_context(h.server_process(spec))
        processes["server"] = server.pid
        worker = None
        if config in ("celery", "queued"):
            log = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "worker.log"
            worker = h.Worker(spec, concurrency=4, log=log)
            stack.callback(worker.stop)
            if config == "celery":
                assert worker.start().process is not None
                processes["worker"] = worker.process.pid
        run = secrets.token_hex(3)

        def bodies(tag: str, n: int) -> list[bytes]:
            if tenants is None:
                return h.product_events(n, f"{run}{tag}")
            return tenants.paid_events(n, f"{run}{tag}")

        load_before = h.load_average()
        warm = bodies("w", args.warm)
        h.blast(port, h.http_requests(port, "/webhooks/stripe", warm), args.concurrency)
        h.blast(port, h.http_requests(port, "/bare", warm), args.concurrency)
        expected = len(warm)
        handling = config in ("inline", "celery")
        drained = None
        if handling:  # the bare endpoint on an idle server
            drained = h.wait_until_done(url, f"evt_bench_{run}", expected, timeout=900)
        rounds = []
        bare = None
        for r in range(args.rounds):
            batch = bodies(f"r{r}", args.n)
            if bare is None or not handling:
                # With handlers running, the bare endpoint is measured once, before them.
                bare = h.blast(port, h.http_requests(port, "/bare", batch), args.concurrency)
            requests = h.http_requests(port, "/webhooks/stripe", batch)
            meter = h.CpuMeter(processes).start()
            hook = h.blast(port, requests, args.concurrency)
            cpu = meter.stop()
            expected += len(batch)
            rounds.append({"bare": bare.summary(), "webhook": hook.summary(),
                           "drained_s": drained if r == 0 else None, "cpu": cpu})
        load_after = h.load_average()
        handled_after = None
        if config != "stored" and not args.quick:  # every event is handled in the end
            if config == "queued":
                assert worker is not None
                worker.start()
            try:
                handled_after = h.wait_until_done(url, f"evt_bench_{run}", expected,
                                                  timeout=args.drain_timeout)
            except TimeoutError as error:
                print(f"  (not all handled within --drain-timeout: {error})")
        return {"database": kind, "config": config, "rounds": rounds,
                "load_before": load_before, "load_after": load_after,
                "handled_after": handled_after, "events": expected}


def _median(rounds: list[dict[str, Any]], side: str, key: str) -> float:
    return statistics.median(r[side][key] for r in rounds)


def report(result: dict[str, Any]) -> dict[str, Any]:
    rounds = result["rounds"]
    print(f"\n{result['database']}, {result['config']}: {DESCRIPTIONS[result['config']]}")
    print(f"  before: {result['load_before']}")
    for n, r in enumerate(rounds, 1):
        bare, hook = r["bare"], r["webhook"]
        drained = (f", warm-up backlog drained in {r['drained_s']:.1f} s first"
                   if r["drained_s"] else "")
        print(f"  round {n}{drained}:")
        for name, s in (("bare endpoint", bare), ("POST /webhooks/stripe", hook)):
            print(f"    {name:22s} p50 {s['p50_ms']:6.1f} ms  p99 {s['p99_ms']:6.1f} ms  "
                  f"max {s['max_ms']:6.1f} ms  {s['rps']:6.0f} req/s  non-200 {s['non_200']}  "
                  )
        print(f"    throughput ratio webhook/bare {hook['rps'] / bare['rps']:.2f}; CPU used "
              f"while the webhooks were sent (share of one core): {r['cpu']}")
    summary = {
        "database": result["database"], "config": result["config"],
        "bare_p50": _median(rounds, "bare", "p50_ms"),
        "bare_p99": _median(rounds, "bare", "p99_ms"),
        "bare_rps": _median(rounds, "bare", "rps"),
        "p50": _median(rounds, "webhook", "p50_ms"),
        "p99": _median(rounds, "webhook", "p99_ms"),
        "rps": _median(rounds, "webhook", "rps"),
        "ratio": statistics.median(r["webhook"]["rps"] / r["bare"]["rps"] for r in rounds),
        "non_200": sum(r["webhook"]["non_200"] for r in rounds),
        "load": result["load_after"],
    }
    p99_ok = summary["p99"] < P99_TARGET_MS
    ratio_ok = summary["ratio"] >= THROUGHPUT_TARGET_RATIO
    print(f"  median of {len(rounds)} round(s): webhook p50 {summary['p50']:.1f} ms, "
          f"p99 {summary['p99']:.1f} ms, {summary['rps']:.0f} req/s; bare p99 "
          f"{summary['bare_p99']:.1f} ms, {summary['bare_rps']:.0f} req/s; ratio "
          f"{summary['ratio']:.2f}")
    print(f"  targets: p99 < {P99_TARGET_MS:.0f} ms: {'met' if p99_ok else 'MISSED'}; "
          f"throughput >= {THROUGHPUT_TARGET_RATIO:.1f}x bare: "
          f"{'met' if ratio_ok else 'MISSED'}")
    print(f"  after: {result['load_after']}")
    if result["handled_after"] is not None:
        print(f"  all {result['events']} events handled {result['handled_after']:.1f} s after "
              "the last round")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="one round of 500 requests, SQLite only, configurations stored, "
                             "queued and inline, no wait for the handlers (under a minute)")
    parser.add_argument("--warm", type=int, default=300, help="warm-up requests")
    parser.add_argument("--drain-timeout", type=float, default=300.0,
                        help="how long to wait, after the rounds, for every event to be "
                             "handled (reported, not part of the measure)")
    parser.add_argument("--n", type=int, default=2000, help="requests per endpoint per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--configs", default="stored,queued,celery,inline")
    parser.add_argument("--tenants", type=int, default=40)
    parser.add_argument("--db", default="both", choices=["both", "sqlite", "pg"])
    parser.add_argument("--pg", help="PostgreSQL URL (a schema is made and dropped); default "
                        "METERBILL_BENCH_DATABASE_URL or METERBILL_TEST_DATABASE_URL")
    parser.add_argument("--broker", default=h.redis_url(), help="Celery broker (Redis)")
    parser.add_argument("--gc-tuned", action="store_true",
                        help="gc.freeze() after start-up and a higher gen-0 threshold in the "
                             "server (not what `meterbill serve` does)")
    args = parser.parse_args()
    args.pg = h.pg_base_url(args.pg)
    h.stop_on_sigterm()
    if args.quick:
        args.n, args.rounds, args.tenants, args.db, args.warm = 500, 1, 10, "sqlite", 100
        args.configs = "stored,queued,inline"
    print(f"{args.n} requests per endpoint and round, {args.rounds} round(s), "
          f"{args.concurrency} concurrent senders, one uvicorn process; {h.load_average()}")
    summaries = []
    for kind in h.databases(args.pg, args.db):
        for config in args.configs.split(","):
            summaries.append(report(measure(kind, config, args)))
    print("\n| database | events | webhook p50 / p99 | webhook req/s | bare p50 / p99 | "
          "bare req/s | ratio | load after |")
    print("| --- | --- | --- | ---: | --- | ---: | ---: | --- |")
    for s in summaries:
        print(f"| {s['database']} | {s['config']} | {s['p50']:.1f} / {s['p99']:.1f} ms | "
              f"{s['rps']:.0f} | {s['bare_p50']:.1f} / {s['bare_p99']:.1f} ms | "
              f"{s['bare_rps']:.0f} | {s['ratio']:.2f} | {s['load'].split(' (')[0][13:]} |")
    sys.exit(1 if any(s["non_200"] for s in summaries) else 0)


if __name__ == "__main__":
    main()
