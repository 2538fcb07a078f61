"""A webhook handler on a slow Stripe fails within STRIPE_WEBHOOK_TIMEOUT_SECONDS and is
retried, instead of holding a worker for stripe-python's default 80 s.

The sandbox is served over HTTP (as `meterbill sandbox` serves it) with its latency fault on
the invoice reads the payment handler makes, and meterbill reaches it through STRIPE_API_BASE,
so the requests go over stripe-python's own HTTP client with the configured timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import stripe
from sqlalchemy import update

from meterbill.adapters.db.inbox import WebhookEvent
from meterbill.bootstrap import Container, build
from meterbill.bootstrap.webhooks import build_webhooks
from meterbill.domain.clock import utcnow
from stripe_sandbox import Sandbox
from stripe_sandbox.faults import install
from stripe_sandbox.server import SandboxServer

from ..conftest import make_settings
from .conftest import ManualRunner, event_body, inbox_rows, make_options, sign, start_renewal

TIMEOUT = 0.3  # STRIPE_WEBHOOK_TIMEOUT_SECONDS for the test
LATENCY_MS = 3000  # what the sandbox adds to each invoice request


@pytest.fixture
def remote(container: Container, sandbox: Sandbox) -> Iterator[Container]:
    """meterbill on the same database, reaching the test's sandbox over HTTP."""
    server = SandboxServer(sandbox).start()
    settings = make_settings(container.settings.database_url, stripe_api_base=server.url,
                             stripe_webhook_timeout_seconds=TIMEOUT,
                             stripe_max_network_retries=1)
    built = build(settings)
    try:
        yield built
    finally:
        built.close()
        install(sandbox).reset()
        server.stop()


def test_a_handler_on_a_slow_stripe_fails_fast_and_its_retry_succeeds(
        container: Container, remote: Container, sandbox: Sandbox,
        stripe_client: stripe.StripeClient) -> None:
    renewal, _ = start_renewal(container, stripe_client)
    failed = [e for e in sandbox.store.all("event") if e["type"] == "invoice.payment_failed"
              and e["data"]["object"]["customer"] == renewal.customer_id]
    body = event_body(failed[-1])
    runner = ManualRunner()
    hooks = build_webhooks(remote, options=make_options(), runner=runner)
    runner.components = hooks
    try:
        receipt = hooks.intake.receive(body, sign(body))
        assert receipt.new and receipt.row_id is not None
        install(sandbox).configure(latency_ms=LATENCY_MS, paths=("/v1/invoices",))

        started = time.monotonic()
        result = hooks.processor.process(receipt.row_id)
        elapsed = time.monotonic() - started
        # Two tries of 0.3 s with stripe-python's backoff between them, far below the latency.
        assert result.outcome == "failed", result
        assert elapsed < LATENCY_MS / 1000 - 0.5, elapsed
        [row] = [r for r in inbox_rows(container) if r.id == receipt.row_id]
        assert (row.status, row.attempts) == ("failed", 1)
        assert row.next_attempt_at is not None

        # Stripe is quick again; the retry (made due now instead of after the backoff) lands.
        install(sandbox).reset()
        with container.db.session() as session:
            session.execute(update(WebhookEvent).where(WebhookEvent.id == receipt.row_id)
                            .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        assert hooks.processor.process(receipt.row_id).outcome == "handled"
    finally:
        hooks.close()
