"""A real `meterbill serve` in sandbox mode with seeded tenants, and Chromium to look at it.

The browser is the system's Chromium (Debian's `chromium`), driven by Playwright with
`executable_path`: nothing is downloaded. Without it the tests skip, saying why, unless
METERBILL_REQUIRE_BROWSER=1 (CI sets it), which makes a missing browser a failure.

The server runs as `make run` runs it, in an empty temporary directory (on SQLite, and on a
PostgreSQL schema of its own too when METERBILL_TEST_DATABASE_URL is set), with a known API token
and link-signing secret, one attempt per webhook event (so a failed event is dead at once),
and no Stripe retries. Seeding uses meterbill's own API, and the official stripe-python client
against the server's sandbox for what only Stripe does (ending a trial, injecting a fault).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from meterbill.config import Settings

TOKEN = "browser-test-token-0123456789"
LINK_SECRET = "browser-test-link-secret-0123456789"
REQUIRE = "METERBILL_REQUIRE_BROWSER"
START_TIMEOUT = 60.0
PG_ENV = "METERBILL_TEST_DATABASE_URL"


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _need(reason: str) -> None:
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{reason} ({REQUIRE}=1: the browser tests are mandatory here)")
    pytest.skip(reason)


@dataclass
class Server:
    url: str
    sandbox_url: str
    root: Path
    log: Path
    env: dict[str, str]

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = httpx.request(method, self.url + path, timeout=60,
                                 headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs)
        assert response.status_code < 400, f"{method} {path}: {response.text}"
        return response

    def stripe(self) -> stripe.StripeClient:
        return stripe.StripeClient("sk_test_browser", base_addresses={"api": self.sandbox_url},
                                   max_network_retries=0)

    def faults(self, **config: Any) -> None:
        method = "POST" if config else "DELETE"
        httpx.request(method, self.sandbox_url + "/_sandbox/faults", json=config or None,
                      timeout=10).raise_for_status()

    def deliveries(self, **config: Any) -> None:
        httpx.post(self.sandbox_url + "/_sandbox/webhooks", json=config,
                   timeout=10).raise_for_status()

    def catch_up(self) -> None:
        subprocess.run([_meterbill(), "webhooks", "catch-up", "--since", "1d"],
                       cwd=self.root, env=self.env, check=True, timeout=120)


def _meterbill() -> str:
    beside = Path(sys.executable).parent / "meterbill"
    return str(beside) if beside.exists() else shutil.which("meterbill") or "meterbill"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _env() -> dict[str, str]:
    settings = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in settings}
    env.update(METERBILL_API_TOKEN=TOKEN, LINK_SIGNING_SECRET=LINK_SECRET,
               WEBHOOK_MAX_ATTEMPTS="1", STRIPE_MAX_NETWORK_RETRIES="0",
               PYTHONUNBUFFERED="1", PATH=os.pathsep.join([str(Path(sys.executable).parent),
                                                           env.get("PATH", "")]))
    return env


def _databases() -> list[Any]:
    found: list[Any] = [pytest.param("sqlite", id="sqlite")]
    if os.environ.get(PG_ENV):
        found.append(pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres))
    return found


@contextlib.contextmanager
def _database(kind: str) -> Iterator[dict[str, str]]:
    """The server's DATABASE_URL: its default SQLite file, or a fresh PostgreSQL schema."""
    if kind == "sqlite":
        yield {}
        return
    base = make_url(os.environ[PG_ENV])
    schema = f"b_{secrets.token_hex(6)}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield {"DATABASE_URL": url.render_as_string(hide_password=False)}
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="package", params=_databases())
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with _database(request.param) as database:
        yield from _serve(tmp_path_factory.mktemp(f"console-{request.param}"), database)


def _serve(root: Path, database: dict[str, str]) -> Iterator[Server]:
    port = _free_port()
    log = root / "serve.log"
    env = {**_env(), **database}
    with log.open("ab") as out:
        process = subprocess.Popen([_meterbill(), "serve", "--host", "127.0.0.1", "--port",
                                    str(port)], cwd=root, env=env, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"meterbill serve exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"meterbill serve did not answer:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        record = json.loads((root / "var" / "meterbill.server.json").read_text())
        running = Server(f"http://127.0.0.1:{port}", record["sandbox_url"].rstrip("/"), root,
                         log, env)
        seed(running)
        yield running
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _tenant(server: Server, tenant_id: str, name: str, plan: str | None, *,
            card: str = "pm_card_visa", trial_days: int = 0) -> dict[str, Any]:
    customer = server.api("POST", "/customers", json={
        "tenant_id": tenant_id, "email": f"billing@{tenant_id}.test", "name": name}).json()
    if plan is None:
        return customer
    created: dict[str, Any] = server.api("POST", "/subscriptions", json={
        "customer_id": customer["customer_id"], "tenant_id": tenant_id, "plan_type": plan,
        "payment_method_id": card, "trial_days": trial_days}).json()
    return created


def seed(server: Server) -> None:
    """Tenants in several states, usage over the included amount, a past-due tenant (its
    trial ended on a card that is declined) and a dead webhook event."""
    _tenant(server, "acme", "Acme Inc.", "pro")
    _tenant(server, "globex", "Globex", "starter")
    _tenant(server, "initech", "Initech", "enterprise", trial_days=14)
    _tenant(server, "hooli", "Hooli", None)
    late = _tenant(server, "umbrella", "Umbrella Corp", "starter",
                   card="pm_card_chargeCustomerFail", trial_days=14)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    server.api("POST", "/usage/events", json={"events": [
        {"event_id": "seed-acme-1", "tenant_id": "acme", "quantity": 125_000, "timestamp": now},
        {"event_id": "seed-globex-1", "tenant_id": "globex", "quantity": 4_200,
         "timestamp": now}]})
    # The trial ends now; Stripe's renewal invoice is finalized and charged to the declined
    # card (Stripe would do so an hour later): the subscription is past due.
    client = server.stripe()
    ended = client.v1.subscriptions.update(late["id"], {"trial_end": "now"},
                                           options={"idempotency_key": "browser-seed-trial"})
    invoice = str(ended.latest_invoice)
    if client.v1.invoices.retrieve(invoice).status == "draft":
        client.v1.invoices.finalize_invoice(invoice, options={"idempotency_key": "seed-fin"})
    with contextlib.suppress(stripe.CardError):
        client.v1.invoices.pay(invoice, options={"idempotency_key": "browser-seed-pay"})
    server.catch_up()
    state = server.api("GET", "/tenants/umbrella").json()["status"]
    assert state == "past_due", state
    # A tenant whose events meet a Stripe that fails when they are processed: with one
    # attempt per event, they are dead. The sandbox delivers events to the server as they
    # happen, so its deliveries are lost while wayne subscribes; catch-up then brings them in.
    server.deliveries(drop_next=1000)
    try:
        _tenant(server, "wayne", "Wayne Enterprises", "starter")
    finally:
        server.deliveries(drop_next=0)
    server.faults(error_rate=1.0, paths=["/v1/subscriptions", "/v1/invoices"])
    try:
        server.catch_up()
    finally:
        server.faults()


# Package scope: Playwright's sync API keeps an event loop in this thread while it runs, and
# the rest of the suite calls asyncio.run.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        _need("Chromium is not installed (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("Playwright for Python is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable,
                                              args=["--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            launched.close()


class ConsoleErrors(list[str]):
    """Console errors and uncaught page errors seen by a page."""


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB",
                                  timezone_id="Europe/Paris")
    tab = context.new_page()
    errors = ConsoleErrors()
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.errors = errors
    try:
        yield tab
    finally:
        context.close()
    assert not errors, f"console errors: {errors}"
