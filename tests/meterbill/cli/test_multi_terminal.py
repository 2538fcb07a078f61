"""`make run` in one terminal, commands in another: while `meterbill serve` holds the DuckDB usage
store, the commands that need it ask the server and print what they print on their own."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

import meterbill
from meterbill.bootstrap import Container, build
from meterbill.config import Settings
from meterbill.domain.clock import utcnow
from meterbill.entrypoints.api import create_app
from meterbill.entrypoints.cli import CliContext
from meterbill.entrypoints.cli.remote import ServerClient
from meterbill.entrypoints.cli.server_record import ServerRecord, record_file
from meterbill.services.usage.ingest import ingest_file_with
from stripe_sandbox import Sandbox, SandboxHTTPClient

from ..conftest import make_settings
from .conftest import run_cli

SRC = str(Path(meterbill.__file__).resolve().parents[1])  # this checkout's src/
MAIN = "from meterbill.entrypoints.cli import main; main()"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A fresh clone's environment: no meterbill settings at all (the defaults: sandbox mode,
    var/meterbill.db, var/usage.duckdb) but `extra`, this checkout's code."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STRIPE_", "METERBILL_", "DATABASE_URL", "USAGE_", "PUBLIC_",
                                "LINK_", "ENVIRONMENT", "PORT", "HOST"))}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def _meterbill(cwd: Path, *args: str,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", MAIN, *args], cwd=cwd, env=_env(env),
                          capture_output=True, text=True, timeout=300)


@contextlib.contextmanager
def _serve(cwd: Path, port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    log = (cwd / "serve.log").open("w")
    server = subprocess.Popen([sys.executable, "-c", MAIN, "serve", "--port", str(port)],
                              cwd=cwd, env=_env(env), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (cwd / "serve.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, (cwd / "serve.log").read_text()
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_commands_beside_a_running_server_ask_it(tmp_path: Path) -> None:
    port = _free_port()
    with _serve(tmp_path, port) as url:
        # The development token the server keeps beside the database (`meterbill api-token`).
        kept = json.loads((tmp_path / "var" / "meterbill.secrets.json").read_text())
        auth = {"Authorization": f"Bearer {kept['api_token']}"}
        with httpx.Client(base_url=url, headers=auth, timeout=30) as api:
            created = api.post("/customers", json={"tenant_id": "t1", "email": "t1@acme.test"})
            assert created.status_code == 200, created.text
            customer = created.json()["customer_id"]
            assert api.post("/subscriptions", json={
                "tenant_id": "t1", "customer_id": customer, "plan_type": "pro",
                "payment_method_id": "pm_card_visa"}).status_code == 201
            # The server opens (and from now on holds) var/usage.duckdb.
            assert api.get("/tenants/t1/usage").json()["used"] == 0

            stamp = datetime.now(UTC).isoformat()  # in the period that has just begun
            usage = tmp_path / "usage.csv"
            usage.write_text("event_id,tenant_id,timestamp,quantity\n"
                             f"e1,t1,{stamp},5\ne2,t1,{stamp},7\n"
                             f"e3,nobody,{stamp},1\nnot,a,row\n")
            ingest = _meterbill(tmp_path, "usage", "ingest", str(usage), "--json")
            assert ingest.returncode == 1, ingest.stderr  # two lines rejected, as locally
            report = json.loads(ingest.stdout)
            assert (report["accepted"], report["stored"], report["rejected"]) == (2, 2, 2)
            assert [(e["line"], e["index"], e["field"]) for e in report["errors"]] == [
                (4, 2, "tenant_id"), (5, 3, None)]
            assert "holds the usage store" in ingest.stderr

            shown = _meterbill(tmp_path, "tenants", "usage", "t1", "--json")
            assert shown.returncode == 0, shown.stderr
            served = api.get("/tenants/t1/usage").json()
            local = json.loads(shown.stdout)
            assert local["used"] == served["used"] == 12
            assert {k: v for k, v in local.items() if k != "as_of"} == {
                k: v for k, v in served.items() if k != "as_of"}

            synced = _meterbill(tmp_path, "usage", "sync", "--json")
            assert synced.returncode == 0, synced.stderr
            assert [(t["tenant_id"], t["status"], t["sent"])
                    for t in json.loads(synced.stdout)["tenants"]] == [("t1", "sent", 12)]

            reconciled = _meterbill(tmp_path, "usage", "reconcile", "--json")
            assert reconciled.returncode == 0, reconciled.stderr
            assert [t["tenant_id"] for t in json.loads(reconciled.stdout)["tenants"]] == ["t1"]
            assert "Could not set lock" not in reconciled.stderr + synced.stderr
        assert json.loads((tmp_path / "var" / "meterbill.server.json").read_text())["api"] == url


# --- in one process: the same output, local or remote -----------------------------------


@pytest.fixture
def file_settings(tmp_path: Path) -> Settings:
    """A SQLite file and a DuckDB file, as `make run` has them."""
    return make_settings(f"sqlite:///{tmp_path / 'var' / 'meterbill.db'}",
                         usage_store_url=f"duckdb:///{tmp_path / 'var' / 'usage.duckdb'}")


@pytest.fixture
def billed(file_settings: Settings, sandbox: Sandbox) -> Settings:
    """Tenant t1 on the pro plan with 12 queries in the usage store (closed again after)."""
    container = build(file_settings, stripe_http_client=SandboxHTTPClient(sandbox))
    try:
        container.upgrade_db()
        container.catalog_sync.sync()
        customer = container.customers.ensure_customer("t1", "t1@acme.test", None)
        container.subscriptions.create(tenant_id="t1", customer_id=customer.stripe_customer_id,
                                       plan_type="pro", payment_method_id="pm_card_visa")
        stamp = datetime.now(UTC).isoformat()  # in the period that has just begun
        result = container.usage_ingest.ingest([
            {"event_id": "e1", "tenant_id": "t1", "timestamp": stamp, "quantity": 12}])
        assert result.accepted == 1
    finally:
        container.close()
    return file_settings


@contextlib.contextmanager
def _server_in_thread(container: Container) -> Iterator[str]:
    """The API on a free port, recorded beside the database as `meterbill serve` records it."""
    server = uvicorn.Server(uvicorn.Config(create_app(container), host="127.0.0.1", port=0,
                                          log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    record = ServerRecord(record_file(container.settings))
    assert record.claim()
    record.publish({"pid": os.getpid(), "api": url})
    try:
        yield url
    finally:
        record.release()
        server.should_exit = True
        thread.join(timeout=10)


def _outputs(settings: Settings, sandbox: Sandbox, *, remote: bool) -> list[str]:
    context = lambda: CliContext(  # noqa: E731 - one fresh context per command
        settings_factory=lambda: settings, lasting_sandbox=False,
        container_factory=lambda s: build(s, stripe_http_client=SandboxHTTPClient(sandbox)))
    outputs = []
    for args in (("tenants", "entitlement", "t1"), ("usage", "reconcile"),
                 ("usage", "reconcile", "--json"),
                 ("usage", "sync", "--date", (utcnow() - timedelta(days=2)).date().isoformat())):
        result = run_cli(context(), *args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        assert ("holds the usage store" in result.stderr) is remote, result.stderr
        if "--json" in args:  # the same document but for when it was made
            data = json.loads(result.stdout)
            data.pop("checked_at")
            outputs.append(json.dumps(data))
        else:
            outputs.append(result.stdout)
    return outputs


def test_local_and_remote_print_the_same(billed: Settings, sandbox: Sandbox) -> None:
    local = _outputs(billed, sandbox, remote=False)
    container = build(billed, stripe_http_client=SandboxHTTPClient(sandbox))
    try:
        with _server_in_thread(container):
            assert container.usage_store.count_raw() == 1  # the server holds the file now
            remote = _outputs(billed, sandbox, remote=True)
    finally:
        container.close()
    assert re.search(r"used_this_period +│ 12 ", local[0]), local[0]
    assert remote == local


def test_a_webhook_replayed_beside_the_server_flushes_usage_through_it(
        billed: Settings, sandbox: Sandbox) -> None:
    # `webhooks replay` of an invoice.created flushes the period's usage before the invoice
    # finalizes: the command must not open the store the server holds, but ask the server.
    container = build(billed, stripe_http_client=SandboxHTTPClient(sandbox))
    try:
        with _server_in_thread(container):
            cli = CliContext(settings_factory=lambda: billed, lasting_sandbox=False,
                             container_factory=lambda s: build(
                                 s, stripe_http_client=SandboxHTTPClient(sandbox)))
            with cli.container(needs_stripe=True) as local:
                customer = local.tenants.get("t1").tenant.stripe_customer_id
                local.usage_flush.flush(customer, datetime.now(UTC) + timedelta(hours=1))
                assert not local.made(Container.usage_store)  # never opened here
            assert container.usage_sync.sync().sent == 0  # the server flushed all 12
    finally:
        container.close()


def test_a_dead_servers_record_is_ignored(billed: Settings, sandbox: Sandbox) -> None:
    # A server killed without clean-up leaves its record, but no lock, behind.
    record_file(billed).write_text(json.dumps({"pid": 999999, "api": "http://127.0.0.1:9"}))
    context = CliContext(settings_factory=lambda: billed, lasting_sandbox=False,
                         container_factory=lambda s: build(
                             s, stripe_http_client=SandboxHTTPClient(sandbox)))
    result = run_cli(context, "tenants", "usage", "t1", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["used"] == 12
    assert "holds the usage store" not in result.stderr
    assert context.settings().public_base_url is None  # links do not follow a dead server


def test_a_file_over_the_body_limit_goes_in_halves_with_its_lines_kept(
        tmp_path: Path) -> None:
    """The server answers 413 above its body limit; the client splits the batch and maps
    each half's errors back to the file's events."""
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        seen.append(len(events))
        if len(events) > 2:
            return httpx.Response(413, json={"error": {"code": "payload_too_large",
                                                       "message": "too large"}})
        errors = [{"index": i, "field": "tenant_id", "message": "Unknown tenant"}
                  for i, e in enumerate(events) if e["tenant_id"] == "nobody"]
        if len(errors) == len(events):
            return httpx.Response(422, json={"error": {
                "code": "invalid_events", "message": "all rejected", "accepted": 0,
                "duplicates": 0, "stored": 0, "rejected": len(errors), "errors": errors}})
        return httpx.Response(200, json={
            "accepted": len(events) - len(errors), "duplicates": 0, "rejected": len(errors),
            "stored": len(events) - len(errors), "errors": errors})

    client = ServerClient(ServerRecord(tmp_path / "r.json"), "http://meterbill.test", "tok",
                          transport=httpx.MockTransport(handler))
    usage = tmp_path / "u.csv"
    usage.write_text("event_id,tenant_id,timestamp\n" + "".join(
        f"e{i},{'nobody' if i in (2, 3) else 't1'},2026-01-01T00:00:00Z\n" for i in range(5)))
    result = ingest_file_with(client.ingest_batch, usage)
    assert seen == [5, 2, 3, 1, 2]
    assert (result.accepted, result.rejected) == (3, 2)
    assert [(e.index, e.line) for e in result.errors] == [(2, 4), (3, 5)]
