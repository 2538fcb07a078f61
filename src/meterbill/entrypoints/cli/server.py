"""Long-running commands: `meterbill serve` (the HTTP API) and `meterbill sandbox` (Stripe's).

`serve` in sandbox mode makes a fresh clone usable with one command: it migrates the database,
syncs the plan catalog into the sandbox, and serves the sandbox's hosted pages (invoice links)
on a free local port next to the API. With a Stripe key, migrating is a deploy step: `serve`
refuses (exit 2) a database whose schema is behind, unless AUTO_MIGRATE=true.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.panel import Panel

from meterbill.adapters.log_format import configure as configure_logs
from meterbill.adapters.tasks.scheduler import InlineScheduler
from meterbill.bootstrap import Container
from meterbill.bootstrap.local import local_secrets
from meterbill.config import Settings
from meterbill.entrypoints.api import create_app
from meterbill.entrypoints.api.auth import MissingApiToken
from meterbill.entrypoints.api.webhooks import install as install_webhooks

from .context import (
    DEFAULT_SANDBOX_PORT,
    CliFailure,
    cli_context,
    keep_sandbox,
    lock_or_server,
    reported,
)
from .output import JsonFlag, panel_console
from .sandbox_account import connect_webhooks
from .sandbox_state import SandboxLock, data_file, uses_in_process_sandbox
from .server_record import ServerRecord, reachable_url, record_file, remembered_port

log = logging.getLogger("meterbill.cli")


Host = Annotated[str, typer.Option("--host", envvar="HOST", help="Interface to listen on.")]


def serve(
    ctx: typer.Context,
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", envvar="PORT", help="Port (env PORT).")] = 8000,
    seed_demo: Annotated[bool, typer.Option(
        "--seed-demo", help="Sandbox mode on a new database: once serving, seed and simulate a "
                            "month of billing (`make run` does).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs). Sandbox mode prepares itself first."""
    cli = cli_context(ctx)
    api_url = reachable_url(host, port)
    with reported(as_json), contextlib.ExitStack() as stack:
        settings = cli.serving(api_url)  # links in emails follow --host/--port
        _configure_logging(settings.log_level, settings.log_format)
        lock = _claim_sandbox(settings) if cli.lasting_sandbox else None
        if lock is not None:
            stack.callback(lock.release)
        record = _claim_record(settings, api_url)
        if record is not None:
            stack.callback(record.release)
        container = stack.enter_context(cli.container(needs_stripe=False))
        try:
            app = create_app(container)  # first: it refuses production without a token
        except MissingApiToken as error:
            raise CliFailure("missing_api_token", str(error), exit_code=2) from None
        install_webhooks(app, container)  # POST /webhooks/stripe and its workers
        sandbox_url = None
        if container.sandbox is not None:
            if lock is not None:
                data = data_file(settings)
                stack.enter_context(keep_sandbox(container.sandbox, data, 0.5))
                log.info("sandbox state is kept in %s", data)
            last_port = remembered_port(record.last(), "sandbox_url") if record else None
            server = _serve_sandbox(container, last_port)
            stack.callback(server.stop)
            sandbox_url = server.url
            if lock is not None:
                lock.write_info({"pid": os.getpid(), "url": sandbox_url, "api": api_url})
        if record is not None:
            record.publish({"pid": os.getpid(), "api": api_url, "sandbox_url": sandbox_url})
        if settings.mode == "sandbox":
            _prepare_sandbox(container)  # migrations + catalog sync: a fresh clone just works
            _warn_missing_customers(container)
            connect_webhooks(container, api_url)  # the sandbox's events come here by themselves
        else:
            _require_schema(container)  # before anything below touches the tables
        scheduler = _start_schedule(container)  # the schedule table, unless beat runs it
        if scheduler is not None:
            stack.callback(scheduler.stop)
        _announce(container, api_url, sandbox_url, app.state.api_token_generated, as_json)
        if seed_demo and settings.mode == "sandbox" and container.uses_test_clocks:
            if container.tenants.list():
                log.info("this database has tenants already: no demo month is seeded "
                         "(`meterbill demo` runs one on a new database)")
            else:
                threading.Thread(target=_seed_demo, args=(container, api_url),
                                 name="meterbill-demo", daemon=True).start()
        stack.enter_context(_sigterm_unwinds())
        with contextlib.suppress(KeyboardInterrupt):
            # JSON logs: uvicorn's own lines go through the root handler too (its default
            # config would print them as text).
            quiet: dict[str, Any] = {"log_config": None} if settings.log_format == "json" \
                else {}
            uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(),
                        **quiet)


def sandbox(
    ctx: typer.Context,
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="0 picks a free port.")] = (
        DEFAULT_SANDBOX_PORT
    ),
    data: Annotated[Path | None, typer.Option(
        "--data", help="Keep the sandbox's state in this JSON file across restarts.")] = None,
    verbose: Annotated[bool, typer.Option(help="Log every request.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run the local Stripe sandbox (a Stripe-compatible API) until Ctrl-C.

    For fault injection and webhook forwarding use `python -m stripe_sandbox --help`.
    `meterbill sandbox advance` moves a sandbox-mode server's time instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    # Imported here: meterbill itself never depends on the sandbox package.
    from stripe_sandbox import Sandbox, SandboxConfig
    from stripe_sandbox.server import SandboxServer

    engine = Sandbox(SandboxConfig())
    with reported(as_json), contextlib.ExitStack() as stack:
        if data is not None:
            stack.enter_context(keep_sandbox(engine, data, 0.5))
        try:
            server = SandboxServer(engine, host, port, verbose=verbose)
        except OSError as error:
            raise CliFailure("port_in_use", f"Cannot listen on {host}:{port}: {error}. Fix: "
                             "pick another --port (0 picks a free one).", exit_code=2) from None
        stack.callback(server.server_close)
        engine.set_public_url(server.url)
        if as_json:
            print(json.dumps({"url": server.url, "port": server.server_address[1],
                              "data": str(data) if data else None}), flush=True)
        else:
            kept = (f"State is kept in {data}." if data else
                    "State lives in this process: stopping it forgets every object.")
            panel_console().print(Panel.fit(
                f"Stripe sandbox listening on [bold]{server.url}[/]\n"
                "Point meterbill at it (no STRIPE_SECRET_KEY needed; any sk_test_ key works):\n"
                f"  export STRIPE_API_BASE={server.url}\n{kept}",
                title="meterbill sandbox", border_style="yellow",
            ))
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


def _claim_sandbox(settings: Settings) -> SandboxLock | None:
    """Take the lock of this database's in-process sandbox (None when there is none)."""
    if not uses_in_process_sandbox(settings):
        return None
    lock = SandboxLock(data_file(settings))
    url = lock_or_server(lock)
    if url is not None:
        raise CliFailure("sandbox_in_use", (
            f"Another `meterbill serve` (pid {lock.holder().get('pid')}) already runs on this "
            f"database with its sandbox at {url}. Fix: stop it, or share its sandbox by "
            f"setting STRIPE_API_BASE={url} for this one."), exit_code=2)
    return lock


def _claim_record(settings: Settings, api_url: str) -> ServerRecord | None:
    """Record where this server listens, for the other commands (None: another holds it)."""
    record = ServerRecord(record_file(settings))
    if not record.claim():
        other = record.running(wait_seconds=0) or {}
        log.warning("another meterbill server (pid %s, %s) is recorded for this database in "
                    "%s; other commands will talk to that one, not to this one",
                    other.get("pid"), other.get("api"), record.path)
        return None
    # Published at once (the sandbox's address follows): a command must not find the
    # previous server's address under this server's lock.
    record.publish({"pid": os.getpid(), "api": api_url,
                    "sandbox_url": record.last().get("sandbox_url")})
    return record


def _serve_sandbox(container: Container, port: int | None) -> Any:
    """Serve the in-process sandbox: hosted invoice links, and other commands.

    On the port the last server used, so that its links keep working; on a free one if that
    is taken (the sandbox then moves the links it has handed out to the new port)."""
    from stripe_sandbox.server import SandboxServer

    if port:
        try:
            return SandboxServer(container.sandbox, port=port).start()
        except OSError:
            log.info("the sandbox's previous port %d is taken: serving it on another", port)
    return SandboxServer(container.sandbox, port=0).start()


def _start_schedule(container: Container) -> InlineScheduler | None:
    """Run the schedule table (bootstrap/jobs.py) in this process; with TASK_RUNNER=celery,
    `meterbill worker --beat` runs it instead."""
    if container.settings.task_runner != "inline":
        log.info("periodic jobs run in `meterbill worker --beat` (TASK_RUNNER=celery)")
        return None
    try:
        runner = container.jobs
        container.notifications  # noqa: B018 - SMTP_URL or EMAIL_FROM checked before serving
    except ValueError as error:
        raise CliFailure("invalid_notification_settings", str(error), exit_code=2) from None
    for job in runner.jobs.values():
        log.info("job %s: %s", job.name, job.schedule.describe())
    return InlineScheduler([(job.name, job.schedule) for job in runner.jobs.values()],
                           runner.run).start()


def _prepare_sandbox(container: Container) -> None:
    """Migrate and sync the catalog, and say what that did (the README promises it)."""
    before = container.schema_status().current
    changes = container.prepare_sandbox()
    after = container.schema_status().current
    changed = sum(1 for change in changes if change.action != "unchanged")
    migrated = (f"migrated the database to revision {after} (from {before or 'none'})"
                if before != after else f"the database is at revision {after} already")
    log.info("sandbox mode: %s; plan catalog synced to the sandbox (%d change(s), %d unchanged)",
             migrated, changed, len(changes) - changed)


def _warn_missing_customers(container: Container) -> None:
    if container.sandbox is None:
        return
    store = container.sandbox.store
    missing = [t.tenant_id for t in container.tenants.list()
               if t.stripe_customer_id and store.get("customer", t.stripe_customer_id) is None]
    if missing:
        log.warning(
            "%d tenant(s) in the database (e.g. %s) point at Stripe customers this sandbox "
            "does not have (its data file %s was removed or belongs to another database). "
            "For a clean start delete the database file too.",
            len(missing), missing[0], data_file(container.settings),
        )


def _require_schema(container: Container) -> None:
    """Outside sandbox mode migrating is a deploy step (`meterbill db upgrade`) or an explicit
    AUTO_MIGRATE=true; a server on a schema that is behind would answer 500s, so it refuses."""
    status = container.schema_status()
    if status.state == "unknown":  # e.g. a rolling deploy: newer code migrated first
        log.warning("%s; serving anyway", status.describe())
    if not status.behind:
        return
    if not container.settings.auto_migrate:
        raise CliFailure("schema_behind", (
            f"Not serving: {status.describe()}. Fix: run `meterbill db upgrade` against this "
            "DATABASE_URL (a deploy step), or set AUTO_MIGRATE=true to migrate when `serve` "
            "starts."), exit_code=2)
    log.info("AUTO_MIGRATE: %s; migrating", status.describe())
    container.upgrade_db()
    log.info("the database schema is at %s (head)", status.head)


def _announce(container: Container, api_url: str, sandbox_url: str | None,
              token_kept: bool, as_json: bool) -> None:
    settings = container.settings
    if as_json:
        print(json.dumps({"url": api_url, "docs": f"{api_url}/docs", "mode": settings.mode,
                          "sandbox_url": sandbox_url}), flush=True)
        return
    if settings.mode != "sandbox":
        log.info("meterbill on %s (Stripe %s mode)", api_url, settings.mode)
        return
    lines = [
        "[bold]SANDBOX MODE[/]: no STRIPE_SECRET_KEY is set; meterbill talks to a local Stripe "
        "sandbox. No real money moves.",
        f"API: {api_url}  (docs: {api_url}/docs)",
    ]
    if sandbox_url:
        lines += [
            f"Stripe sandbox (in this process): {sandbox_url}",
            f"Its state is kept in {data_file(settings)}; other meterbill commands on this "
            "database use this sandbox while the server runs.",
        ]
    elif settings.stripe_api_base:
        lines.append(f"Stripe sandbox: {settings.stripe_api_base}")
    if token_kept:
        lines.append(f"API token: the development one kept in {local_secrets(settings).path} "
                     "(`meterbill api-token` prints it).")
    panel_console().print(Panel.fit("\n".join(lines), title="meterbill", border_style="yellow"))


def _seed_demo(container: Container, api_url: str) -> None:
    """Once the API listens (the sandbox's webhooks come to it), simulate a month."""
    import time
    import urllib.request

    from meterbill.services.sandbox.demo import run_demo

    from .sandbox import summary_tables

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # our own address
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with direct.open(api_url + "/health", timeout=2):
                break
        except OSError:
            time.sleep(0.2)
    try:
        summary = run_demo(container.demo_parts, progress=lambda line: log.info("%s", line))
    except Exception:  # the server keeps serving; the log says what failed
        log.exception("the demo month could not be seeded")
        return
    out = panel_console()
    for seen in summary_tables(summary.to_dict()):
        out.print(seen)
    out.print(Panel.fit(
        f"A month of billing is seeded. Look at it:\n"
        f"  console:  {api_url}/admin (log in with the token)\n"
        f"  API docs: {api_url}/docs\n"
        f"  token:    . .venv/bin/activate && meterbill api-token\n"
        f"  tenants:  meterbill tenants list; meterbill tenants timeline demo_003\n"
        f"  emails:   meterbill notifications list\n"
        "  more time: meterbill sandbox advance --days 7 (or the console's banner)",
        title="meterbill demo", border_style="green"))


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Make `kill` end `serve` as Ctrl-C does, so the sandbox state is saved on the way out.

    uvicorn shuts down gracefully on SIGTERM and then raises the signal again; without a
    handler of ours that would kill the process before our clean-up runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _configure_logging(level: str, log_format: str = "text") -> None:
    configure_logs(level, log_format)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # stripe-python logs every request at INFO (naming api.stripe.com even when the
        # sandbox answers) and Alembic its plugins: noise unless debugging.
        for noisy in ("stripe", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
