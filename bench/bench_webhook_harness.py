"""Shared parts of the webhook benchmarks (`bench_webhook_ack`, `_e2e`, `_kill`); no bench itself.

- processes: the meterbill app on uvicorn (`serve`, a child process running this file), the
  Stripe sandbox over HTTP (`python -m stripe_sandbox`), Celery workers (`meterbill worker`, or
  this file's `worker` for a worker with the benchmark's counting handler);
- tenants with a paid invoice in that sandbox, and `invoice.paid` events about them;
- the load generator: asyncio over raw keep-alive sockets in the benchmark's own process
  (never the server's), so that its cost is small and the same for every endpoint measured;
- databases: a temporary SQLite file, or a fresh schema on PostgreSQL, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# At module level: FastAPI reads the bare endpoint's annotations from this module's globals.
from fastapi import Request
from fastapi.responses import JSONResponse

SECRET = "whsec_bench_0123456789abcdef0123456789"
API_TOKEN = "bench-token-0123456789"
COUNTED = "bench.counted"  # the kill benchmark's event type: its handler's effect is countable
HERE = Path(__file__).resolve()


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return (f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} "
            f"(1/5/15 min, {os.cpu_count()} cores)")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def pg_base_url(arg: str | None) -> str | None:
    return arg or os.environ.get("METERBILL_BENCH_DATABASE_URL") or os.environ.get(
        "METERBILL_TEST_DATABASE_URL")


def redis_url() -> str:
    return os.environ.get("METERBILL_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"


# --- databases --------------------------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, pg_base: str | None) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file or a PostgreSQL schema of its own."""
    if kind == "SQLite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    assert pg_base, "PostgreSQL needs a URL"
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(pg_base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(pg_base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def databases(pg_base: str | None, which: str = "both") -> list[str]:
    kinds = ["SQLite"] if which in ("both", "sqlite") else []
    if which in ("both", "pg") and pg_base:
        kinds.append("PostgreSQL")
    return kinds


def settings(database_url: str, sandbox_url: str | None, **extra: Any) -> Any:
    from meterbill.config import Settings

    return Settings(_env_file=None, database_url=database_url,  # type: ignore[call-arg]
                    stripe_secret_key=None, stripe_api_base=sandbox_url,
                    stripe_max_network_retries=0, meterbill_api_token=API_TOKEN,
                    log_level="WARNING", **extra)


def child_env(database_url: str, sandbox_url: str | None, **extra: str) -> dict[str, str]:
    """The environment of a meterbill process: this one's minus Stripe and meterbill settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STRIPE_", "WEBHOOK_", "CELERY_", "TASK_RUNNER", "DATABASE_"))}
    env.update(DATABASE_URL=database_url, STRIPE_MAX_NETWORK_RETRIES="0", LOG_LEVEL="WARNING",
               METERBILL_API_TOKEN=API_TOKEN, PYTHONPATH=os.pathsep.join(
                   [str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])]))
    if sandbox_url:
        env["STRIPE_API_BASE"] = sandbox_url
    env.update(extra)
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by named processes between `start()` and `stop()`."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = processes
        self.used: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self._wall = time.perf_counter()
        self._before = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        return self

    def stop(self) -> str:
        wall = time.perf_counter() - self._wall
        self.used = {name: cpu_seconds(pid) - self._before[name]
                     for name, pid in self.processes.items()}
        return ", ".join(f"{name} {used / wall:.0%}" for name, used in self.used.items())


# --- the Stripe sandbox over HTTP ---------------------------------------------------------------


@contextlib.contextmanager
def sandbox_process() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`python -m stripe_sandbox` on a free port, in a process of its own; yields its URL and
    the process."""
    process = subprocess.Popen([sys.executable, "-m", "stripe_sandbox", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        port = None
        for line in process.stdout:
            if line.startswith("port "):
                port = int(line.split()[1])
                break
        if port is None:
            raise SystemExit("the Stripe sandbox did not start")
        yield f"http://127.0.0.1:{port}", process
    finally:
        _stop(process)


@dataclass
class Tenants:
    """Tenants with a Stripe customer and a paid starter subscription; their invoices."""

    invoices: list[dict[str, Any]]

    def paid_events(self, n: int, run: str) -> list[bytes]:
        """`n` distinct `invoice.paid` events, round robin over the tenants' invoices."""
        return [envelope(f"evt_bench_{run}_{i:07d}", "invoice.paid",
                         self.invoices[i % len(self.invoices)]) for i in range(n)]


def prepare_tenants(database_url: str, sandbox_url: str, count: int) -> Tenants:
    """Migrate, sync the catalog into the sandbox, and make `count` paying tenants, the way
    meterbill's own services do it (customer, then a subscription charged at once)."""
    from meterbill.bootstrap import build

    container = build(settings(database_url, sandbox_url))
    try:
        container.upgrade_db()
        container.catalog_sync.sync()
        client = container.stripe_client
        assert client is not None
        invoices = []
        run = secrets.token_hex(3)
        for n in range(count):
            tenant = f"bench_{run}_{n:04d}"
            view = container.customers.ensure_customer(tenant, f"{tenant}@example.com", None)
            customer_id = view.stripe_customer_id
            assert customer_id
            subscription = container.subscriptions.create(
                tenant, customer_id, "starter", trial_days=0, payment_method_id="pm_card_visa")
            stripe_subscription = client.v1.subscriptions.retrieve(subscription.id)
            invoice = client.v1.invoices.retrieve(str(stripe_subscription.latest_invoice))
            if invoice.status == "open":  # meterbill subscribes with payment pending
                invoice = client.v1.invoices.pay(invoice.id)
            assert invoice.status == "paid", invoice.status
            invoices.append(invoice.to_dict())
        return Tenants(invoices)
    finally:
        container.close()


# --- events -----------------------------------------------------------------------------------


def envelope(event_id: str, event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({
        "id": event_id, "object": "event", "type": event_type,
        "api_version": "2026-10-28.endive", "created": int(time.time()), "livemode": False,
        "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
        "data": {"object": obj},
    }, default=str).encode()  # stripe-python gives Decimals where Stripe sends strings


def product_events(n: int, run: str) -> list[bytes]:
    """Events of a type meterbill stores and marks ignored (no handler, no task)."""
    return [envelope(f"evt_bench_{run}_{i:07d}", "product.created",
                     {"id": f"prod_bench_{i}", "object": "product", "name": "bench",
                      "active": True, "metadata": {}}) for i in range(n)]


def counted_events(n: int, run: str) -> list[bytes]:
    return [envelope(f"evt_bench_{run}_{i:07d}", COUNTED, {"id": f"obj_{run}_{i}"})
            for i in range(n)]


def http_requests(port: int, path: str, bodies: Sequence[bytes]) -> list[bytes]:
    """Each body as a complete, signed HTTP/1.1 request (signed now: 5 minutes to send it)."""
    import stripe

    now = int(time.time())
    out = []
    for body in bodies:
        signature = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, now)
        out.append(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nStripe-Signature: {signature}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return out


# --- the load generator -----------------------------------------------------------------------


@dataclass
class Sent:
    latencies: list[float]  # seconds, one per answered request
    seconds: float  # wall time of the whole run
    statuses: dict[int, int]
    client_cpu: float  # CPU seconds this process spent meanwhile
    behind: float = 0.0  # paced runs: the latest a request left after its planned time

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def non_200(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)

    def summary(self) -> dict[str, float]:
        return {"p50_ms": percentile(self.latencies, 0.5) * 1000,
                "p99_ms": percentile(self.latencies, 0.99) * 1000,
                "max_ms": max(self.latencies) * 1000, "rps": self.rps,
                "non_200": self.non_200, "client_cpu_share": self.client_cpu / self.seconds}


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> int:
        """Send one request, read its whole answer; its status."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        self.writer.close()


def blast(port: int, requests: Sequence[bytes], concurrency: int,
          progress: list[int] | None = None) -> Sent:
    """Every request, as fast as the server answers, over `concurrency` keep-alive
    connections (each sends its next request when its previous answer is in). `progress[0]`
    counts the answers as they come (for another thread to watch)."""

    async def run() -> Sent:
        connections = [await _Connection.open(port) for _ in range(concurrency)]
        latencies: list[float] = []
        statuses: dict[int, int] = {}

        async def sender(connection: _Connection, mine: Sequence[bytes]) -> None:
            for request in mine:
                started = time.perf_counter()
                status = await connection.exchange(request)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
                if progress is not None:
                    progress[0] += 1

        cpu, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(sender(c, requests[i::concurrency])
                               for i, c in enumerate(connections)))
        seconds = time.perf_counter() - start
        for connection in connections:
            connection.close()
        return Sent(latencies, seconds, statuses, time.process_time() - cpu)

    return asyncio.run(run())


def paced(port: int, requests: Sequence[bytes], rate: float, on_sent: Any = None) -> Sent:
    """Request i leaves at start + i/rate (a steady rate, as Stripe delivers), on a free
    keep-alive connection, opening another when all are busy. `on_sent(i)` after each."""

    async def run() -> Sent:
        idle: list[_Connection] = []
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        behind = 0.0

        async def send(i: int, request: bytes) -> None:
            reused = bool(idle)
            connection = idle.pop() if idle else await _Connection.open(port)
            started = time.perf_counter()
            try:
                status = await connection.exchange(request)
            except (asyncio.IncompleteReadError, ConnectionError):
                if not reused:
                    raise
                # The server closed an idle keep-alive connection: send again on a new one,
                # as an HTTP client (and Stripe) would. A repeat changes nothing.
                connection.close()
                connection = await _Connection.open(port)
                status = await connection.exchange(request)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
            idle.append(connection)
            if on_sent is not None:
                on_sent(i)

        tasks = []
        cpu, start = time.process_time(), time.perf_counter()
        for i, request in enumerate(requests):
            due = start + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            behind = max(behind, time.perf_counter() - due)
            tasks.append(asyncio.create_task(send(i, request)))
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - start
        for connection in idle:
            connection.close()
        return Sent(latencies, seconds, statuses, time.process_time() - cpu, behind)

    return asyncio.run(run())


# --- the meterbill server (a child process running this file) ----------------------------------


@dataclass
class ServerSpec:
    database_url: str
    sandbox_url: str | None = None
    runner: str = "inline"  # inline | celery
    broker: str | None = None
    queue: str = "meterbill-webhooks"
    workers: int = 4  # inline runner threads
    counted: bool = False  # handle COUNTED events (the kill benchmark)
    effect_ms: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)  # more WebhookOptions
    gc_tuned: bool = False


def counting_handler(effect_ms: float) -> Any:
    """A handler whose effect can be counted: one row per time it ran, in its transaction.
    It waits `effect_ms` first, standing in for the Stripe call a real handler makes."""
    from sqlalchemy import text

    def counted(ctx: Any, event: Any) -> str:
        if effect_ms:
            time.sleep(effect_ms / 1000)
        ctx.session.execute(text("INSERT INTO bench_effects (event_id, pid) VALUES (:e, :p)"),
                            {"e": event.id, "p": os.getpid()})
        return "counted"

    return counted


def webhook_options(spec: ServerSpec) -> Any:
    from meterbill.bootstrap.webhooks import webhook_options
    from meterbill.config import Settings

    # The rate limiter runs (its cost is measured) but never refuses: every sender here
    # shares one address. The sweep's interval is the worker's setting, not an option.
    options = {k: v for k, v in spec.options.items() if k != "sweep_interval_seconds"}
    return webhook_options(Settings(_env_file=None),  # type: ignore[call-arg]
                           signing_secrets=(SECRET,), rate_limit_per_minute=10**9,
                           task_runner=spec.runner, celery_broker_url=spec.broker,
                           celery_queue=spec.queue, workers=spec.workers, **options)


def handlers(spec: ServerSpec) -> Any:
    from meterbill.services.webhooks.handlers import HANDLERS

    if not spec.counted:
        return HANDLERS
    return {**HANDLERS, COUNTED: counting_handler(spec.effect_ms)}


def serve(spec: ServerSpec, port_file: str) -> None:
    """The child: meterbill's app (as `meterbill serve` builds it) plus a bare endpoint."""
    import gc
    import logging

    import uvicorn

    from meterbill.bootstrap import build
    from meterbill.bootstrap.webhooks import build_webhooks
    from meterbill.entrypoints.api import create_app
    from meterbill.entrypoints.api.webhooks import install

    logging.basicConfig(level=logging.WARNING)
    container = build(settings(spec.database_url, spec.sandbox_url))
    container.upgrade_db()
    container.webhooks = build_webhooks(container, options=webhook_options(spec),
                                        handlers=handlers(spec))
    app = create_app(container)
    install(app, container)

    @app.post("/bare")
    async def bare(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"received": True})

    if spec.gc_tuned:
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
    # As `meterbill serve` runs it (access log on, below the WARNING level here).
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))

    def announce() -> None:
        while not server.started:
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        Path(port_file).write_text(str(port))

    threading.Thread(target=announce, daemon=True).start()
    server.run()
    container.close()


@contextlib.contextmanager
def server_process(spec: ServerSpec) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The server in a child process; yields (port, process) once it listens."""
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        log = Path(tmp) / "server.log"
        with log.open("wb") as errors:
            child = subprocess.Popen([sys.executable, str(HERE), "serve",
                                      json.dumps(asdict(spec)), str(port_file)],
                                     stderr=errors, cwd=tmp)
        try:
            deadline = time.monotonic() + 120
            while not port_file.exists() or not port_file.read_text():
                if child.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.05)
            yield int(port_file.read_text()), child
        finally:
            _stop(child)


# --- Celery workers ---------------------------------------------------------------------------


class Worker:
    """A Celery worker process: `meterbill worker`, or (`counted`) the same worker code with
    the benchmark's counting handler and options (`worker` mode of this file)."""

    def __init__(self, spec: ServerSpec, concurrency: int = 4, beat: bool = False,
                 log: Path | None = None) -> None:
        self.spec = spec
        self.concurrency = concurrency
        self.beat = beat
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        spec = self.spec
        assert spec.broker
        if spec.counted:
            command = [sys.executable, str(HERE), "worker", json.dumps(asdict(spec)),
                       str(self.concurrency), "beat" if self.beat else "-"]
        else:
            command = [sys.executable, "-m", "meterbill.entrypoints.worker",
                       "--concurrency", str(self.concurrency), "--loglevel", "WARNING"]
            if self.beat:
                command.append("--beat")
        env = child_env(spec.database_url, spec.sandbox_url, CELERY_BROKER_URL=spec.broker,
                        METERBILL_CELERY_QUEUE=spec.queue)
        workdir = tempfile.mkdtemp(prefix="bench-worker-")  # beat's schedule file goes here
        # A session of its own: `--beat` runs beat in a child process, which must go too.
        with (self.log.open("ab") if self.log else open(os.devnull, "wb")) as errors:
            self.process = subprocess.Popen(command, env=env, cwd=workdir,
                                            stdout=subprocess.DEVNULL, stderr=errors,
                                            start_new_session=True)
        return self

    def kill(self) -> None:
        """SIGKILL to the worker and its beat: no clean-up, no acknowledgements,
        transactions cut off (a machine or container that dies)."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the group
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_counting_worker(spec: ServerSpec, concurrency: int, beat: bool) -> None:
    """The child of `Worker(counted)`: `meterbill worker`'s own code (`run_worker`), with
    the counting handler and the spec's options."""
    from meterbill.adapters.tasks.celery_app import CeleryTaskRunner
    from meterbill.bootstrap import build
    from meterbill.bootstrap.webhooks import build_webhooks
    from meterbill.entrypoints.worker import run_worker

    def components(container: Any, app: Any) -> Any:
        return build_webhooks(container, options=webhook_options(spec),
                              runner=CeleryTaskRunner(app), handlers=handlers(spec))

    assert spec.broker
    sweep = float(spec.options.get("sweep_interval_seconds", 30.0))
    worker_settings = settings(spec.database_url, spec.sandbox_url).model_copy(update={
        "task_runner": "celery", "celery_broker_url": spec.broker,
        "webhook_sweep_interval_seconds": sweep})
    run_worker(worker_settings, spec.queue, concurrency=concurrency, beat=beat,
               loglevel="WARNING", container=lambda: build(worker_settings),
               components=components)


def purge_queue(broker: str, queue: str) -> None:
    """Delete a benchmark's own queue from the broker (on Redis, kombu's bindings too)."""
    from kombu import Connection

    with contextlib.suppress(Exception), Connection(broker) as connection:
        connection.default_channel.queue_delete(queue)
    if broker.startswith("redis"):
        import redis

        with contextlib.suppress(Exception):
            client = redis.Redis.from_url(broker)
            client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
            client.close()


def stop_on_sigterm() -> None:
    """SIGTERM ends a benchmark as Ctrl-C does: its child processes and schemas go too."""

    def _exit(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _exit)


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


# --- the inbox ----------------------------------------------------------------------------------


def inbox_times(database_url: str, prefix: str) -> list[tuple[str, Any, Any, int]]:
    """(status, received_at, handled_at, attempts) of the inbox rows whose event id starts
    with `prefix`."""
    from sqlalchemy import select

    from meterbill.adapters.db.inbox import WebhookEvent
    from meterbill.adapters.db.session import Database

    db = Database(database_url)
    try:
        with db.session() as session:
            query = select(WebhookEvent.status, WebhookEvent.received_at,
                           WebhookEvent.handled_at, WebhookEvent.attempts).where(
                WebhookEvent.event_id.startswith(prefix, autoescape=True))
            return [tuple(row) for row in session.execute(query)]  # type: ignore[misc]
    finally:
        db.dispose()


def wait_until_done(database_url: str, prefix: str, expected: int, timeout: float,
                    done: Sequence[str] = ("handled", "ignored")) -> float:
    """Seconds until all `expected` rows are done; raises TimeoutError with the counts."""
    from sqlalchemy import func, select

    from meterbill.adapters.db.inbox import WebhookEvent
    from meterbill.adapters.db.session import Database

    db = Database(database_url)
    start = time.monotonic()
    try:
        while True:
            with db.session() as session:
                counts = dict(session.execute(
                    select(WebhookEvent.status, func.count()).where(
                        WebhookEvent.event_id.startswith(prefix, autoescape=True)).group_by(
                        WebhookEvent.status)).all())
            if sum(counts.get(s, 0) for s in done) >= expected:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"after {timeout:.0f} s: {counts}")
            time.sleep(0.25)
    finally:
        db.dispose()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("bench_webhook_harness: shared code of the webhook benchmarks; nothing to run")
    elif sys.argv[1] == "serve":
        serve(ServerSpec(**json.loads(sys.argv[2])), sys.argv[3])
    elif sys.argv[1] == "worker":
        run_counting_worker(ServerSpec(**json.loads(sys.argv[2])), int(sys.argv[3]),
                            sys.argv[4] == "beat")
