"""Webhook acknowledgement: latency p50/p99 and requests/s at 32 concurrent senders.

`POST /webhooks/stripe` of meterbill's real app (signature check, inbox insert, commit, inline
workers running) against a bare FastAPI endpoint that reads the body and returns 200, both on
the same uvicorn server in the same run; printed with their ratios. Targets: p99 under 50 ms,
throughput at least half of the bare endpoint's.

The server runs in a child process (so the senders do not share its interpreter); senders are
threads with keep-alive connections and pre-signed bodies. On SQLite (a temp file) always, and
on PostgreSQL when `--pg URL` or METERBILL_BENCH_DATABASE_URL is given (a fresh schema there).
Run: `python bench/bench_webhook_ack.py [--n 4000] [--concurrency 32] [--pg URL] [--gc-tuned]`.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

SECRET = "whsec_bench_0123456789abcdef0123456789"
P99_TARGET_MS = 50.0
THROUGHPUT_TARGET_RATIO = 0.5


# --- the server (child process) ------------------------------------------------------------


def serve(database_url: str, port_file: str, gc_tuned: bool) -> None:
    import uvicorn

    from meterbill.bootstrap import build
    from meterbill.config import Settings
    from meterbill.entrypoints.api import create_app
    from meterbill.entrypoints.api.webhooks import install
    from meterbill.services.webhooks.options import WebhookOptions
    from meterbill.webhooks_wiring import build_webhooks

    settings = Settings(_env_file=None, database_url=database_url,  # type: ignore[call-arg]
                        stripe_secret_key=None, stripe_api_base=None,
                        meterbill_api_token="bench-token-0123456789", log_level="WARNING")
    container = build(settings)
    container.upgrade_db()
    container.webhooks = build_webhooks(  # type: ignore[attr-defined]
        container, options=WebhookOptions(signing_secrets=(SECRET,), rate_limit_per_minute=0))
    app = create_app(container)
    install(app, container)

    @app.post("/bare")
    async def bare(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"received": True})

    if gc_tuned:
        # Move start-up objects out of the collector's sight and collect less often: the
        # long full collections are what the p99 otherwise shows.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            access_log=False)
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started:
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        Path(port_file).write_text(str(port))

    threading.Thread(target=announce, daemon=True).start()
    server.run()


# --- the senders ------------------------------------------------------------------------------


def _body(n: int, run: str, event_type: str = "product.created") -> bytes:
    return json.dumps({
        "id": f"evt_bench_{run}_{n:07d}", "object": "event", "type": event_type,
        "api_version": "2026-10-28.endive", "created": int(time.time()), "livemode": False,
        "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
        "data": {"object": {"id": f"obj_bench_{n}", "object": event_type.split(".")[0],
                            "customer": "cus_bench_unknown", "metadata": {}}},
    }).encode()


def _signed(bodies: list[bytes]) -> list[tuple[bytes, str]]:
    import stripe

    now = int(time.time())
    return [(b, stripe.WebhookSignature.generate_signature_header(b.decode(), SECRET, now))
            for b in bodies]


def blast(port: int, path: str, requests: list[tuple[bytes, str]],
          concurrency: int) -> tuple[list[float], float, int]:
    """Send every request from `concurrency` threads; (latencies s, seconds, non-200s)."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    chunks = [requests[i::concurrency] for i in range(concurrency)]
    barrier = threading.Barrier(concurrency + 1)

    def sender(chunk: list[tuple[bytes, str]]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        bad = 0
        barrier.wait()
        for body, signature in chunk:
            started = time.perf_counter()
            connection.request("POST", path, body=body, headers={
                "Content-Type": "application/json", "Stripe-Signature": signature})
            answer = connection.getresponse()
            answer.read()
            mine.append(time.perf_counter() - started)
            bad += answer.status != 200
        connection.close()
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    threads = [threading.Thread(target=sender, args=(c,)) for c in chunks]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - start, failures[0]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(label: str, database_url: str, n: int, concurrency: int,
            event_type: str, gc_tuned: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        child = subprocess.Popen([sys.executable, __file__, "--serve", database_url,
                                  str(port_file), "gc" if gc_tuned else "-"])
        try:
            deadline = time.monotonic() + 60
            while not port_file.exists() or not port_file.read_text():
                if child.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{label}: the server did not start")
                time.sleep(0.05)
            port = int(port_file.read_text())
            run = secrets.token_hex(3)
            warm = _signed([_body(i, run + "w") for i in range(200)])
            blast(port, "/webhooks/stripe", warm, concurrency)
            blast(port, "/bare", warm, concurrency)
            requests = _signed([_body(i, run, event_type) for i in range(n)])
            results: dict[str, Any] = {"database": label, "type": event_type}
            for name, path in (("bare", "/bare"), ("webhook", "/webhooks/stripe")):
                latencies, seconds, failures = blast(port, path, requests, concurrency)
                results[name] = {
                    "p50_ms": statistics.median(latencies) * 1000,
                    "p99_ms": _percentile(latencies, 0.99) * 1000,
                    "rps": len(latencies) / seconds, "non_200": failures}
            return results
        finally:
            child.terminate()
            child.wait(30)


def _pg_schema_url(base: str) -> tuple[str, Any]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), drop


def report(results: dict[str, Any]) -> None:
    bare, hook = results["bare"], results["webhook"]
    print(f"\n{results['database']}, events of type {results['type']}:")
    for name, r in (("bare endpoint", bare), ("POST /webhooks/stripe", hook)):
        print(f"  {name:22s} p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
              f"{r['rps']:7.0f} req/s  (non-200: {r['non_200']})")
    ratio = hook["rps"] / bare["rps"]
    print(f"  ratios webhook/bare: p50 {hook['p50_ms'] / bare['p50_ms']:.2f}x, "
          f"p99 {hook['p99_ms'] / bare['p99_ms']:.2f}x, throughput {ratio:.2f}")
    print(f"  targets: p99 < {P99_TARGET_MS:.0f} ms: "
          f"{'met' if hook['p99_ms'] < P99_TARGET_MS else 'MISSED'}; throughput >= "
          f"{THROUGHPUT_TARGET_RATIO:.1f}x bare: "
          f"{'met' if ratio >= THROUGHPUT_TARGET_RATIO else 'MISSED'}")


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3], sys.argv[4] == "gc")
        return
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4000, help="requests per endpoint")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--types", default="product.created,invoice.paid",
                        help="event types to send, one run each: product.created has no "
                             "handler (stored as ignored); invoice.paid is processed by the "
                             "inline workers while the senders run (its customer is unknown, "
                             "so each is claimed, handled and recorded as a retry)")
    parser.add_argument("--gc-tuned", action="store_true",
                        help="gc.freeze() after start-up and a higher gen-0 threshold in the "
                             "server (what `meterbill serve` could do)")
    parser.add_argument("--pg", default=os.environ.get("METERBILL_BENCH_DATABASE_URL"),
                        help="PostgreSQL URL (a schema is made and dropped)")
    args = parser.parse_args()
    print(f"{args.n} requests per endpoint, {args.concurrency} concurrent senders, "
          "one uvicorn process")
    for event_type in args.types.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            report(measure("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.n,
                           args.concurrency, event_type, args.gc_tuned))
        if args.pg:
            url, drop = _pg_schema_url(args.pg)
            try:
                report(measure("PostgreSQL", url, args.n, args.concurrency, event_type,
                               args.gc_tuned))
            finally:
                drop()


if __name__ == "__main__":
    main()
