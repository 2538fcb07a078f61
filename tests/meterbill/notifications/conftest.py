"""Fixtures for notification tests: a container that sends through the test's SMTP server, a
tenant with a Stripe customer, and a local HTTP receiver standing in for Slack."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from meterbill.adapters.db.repositories import TenantRepository
from meterbill.bootstrap import Container
from meterbill.ports.notify import Notice
from stripe_sandbox import Sandbox

from ..conftest import make_container, make_settings
from ..smtp import SmtpServer

ADMIN = "ops@example.com"


@dataclass
class AlertReceiver:
    """A tiny real HTTP server: records each POSTed JSON body; `fail` answers 500 that many
    times first."""

    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)
    fail: int = 0


@pytest.fixture
def alert_receiver() -> Iterator[AlertReceiver]:
    receiver = AlertReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if receiver.fail > 0:
                receiver.fail -= 1
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b"boom")
                return
            receiver.posts.append(json.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/B000/secret"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mail_container(database_url: str, sandbox: Sandbox,
                   smtp_server: SmtpServer) -> Iterator[Container]:
    """meterbill sending email through the test's SMTP server, with one admin address."""
    settings = make_settings(database_url, smtp_url=smtp_server.url, admin_emails=ADMIN,
                             email_from="Billing <billing@meterbill.test>")
    built = make_container(settings, sandbox, sync=False)
    try:
        yield built
    finally:
        built.close()


def add_tenant(container: Container, client: stripe.StripeClient, tenant_id: str = "acme",
               email: str = "ap@acme.test") -> str:
    """A tenant with a Stripe customer in the sandbox; the customer id."""
    customer = client.v1.customers.create(params={"email": email,
                                                  "metadata": {"tenant_id": tenant_id}})
    with container.db.session() as session:
        TenantRepository(session).claim_customer(tenant_id, email, "Acme Inc", customer.id)
    return str(customer.id)


def reminder(dedupe_key: str = "dunning:acme:1:in_1", **facts: Any) -> Notice:
    values: dict[str, Any] = {
        "tenant_name": "Acme Inc", "email": "ap@acme.test", "amount_due": 4900,
        "currency": "usd", "invoice_id": "in_1", "attempt_count": 1,
        "invoice_url": "https://invoice.example/i/in_1?x=1&y=2",
        "next_step": "warning", "next_step_at": "2026-12-04T10:00:00+00:00",
        "customer_id": "cus_1", "plan": "pro",
    }
    values.update(facts)
    return Notice(kind="dunning_reminder", dedupe_key=dedupe_key, tenant_id="acme",
                  detail="payment failed once", facts=values, event_id="evt_1")


def enqueue(container: Container, notice: Notice) -> bool:
    with container.db.session() as session:
        return container.notifier.enqueue(session, notice)


