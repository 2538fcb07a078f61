"""End to end: the sandbox delivers signed events to meterbill's app on a real uvicorn server,
twice each and shuffled; the inline runner handles them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import stripe
import uvicorn

from meterbill.adapters.db.session import Database
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents, build_webhooks
from meterbill.entrypoints.api import create_app
from meterbill.entrypoints.api.webhooks import install
from stripe_sandbox import Sandbox
from stripe_sandbox.delivery import Dispatcher

from .conftest import (
    inbox_rows,
    make_options,
    pay_renewal,
    start_renewal,
    stripe_events,
    tenant_state,
)


@dataclass
class LiveApp:
    url: str
    hooks: WebhookComponents
    dispatcher: Dispatcher
    endpoint_id: str


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # not the main thread
        pass


@pytest.fixture
def live(container: Container, sandbox: Sandbox,
         stripe_client: stripe.StripeClient) -> Iterator[LiveApp]:
    # The endpoint's URL is known only once the server listens; register a placeholder first.
    endpoint = stripe_client.v1.webhook_endpoints.create(
        params={"url": "http://127.0.0.1:9/webhooks/stripe", "enabled_events": ["*"]})
    hooks = build_webhooks(container, options=make_options(signing_secrets=(endpoint.secret,),
                                                           workers=4))
    container.webhooks = hooks  # type: ignore[attr-defined]
    app = create_app(container)
    install(app, container)
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/webhooks/stripe"
    stripe_client.v1.webhook_endpoints.update(endpoint.id, params={"url": url})
    dispatcher: Dispatcher = sandbox.webhooks  # type: ignore[attr-defined]
    dispatcher.configure(duplicate=True, shuffle_seconds=0.3, seed=11, retry_base_seconds=0.2,
                         workers=8)
    try:
        yield LiveApp(url, hooks, dispatcher, endpoint.id)
    finally:
        dispatcher.close()
        server.should_exit = True
        thread.join(10)


def settle(live: LiveApp) -> None:
    assert live.dispatcher.wait_idle(30)
    assert live.hooks.runner.wait_idle(30)  # type: ignore[attr-defined]


def test_shuffled_duplicated_delivery_is_handled_once_and_ends_in_order_state(
        live: LiveApp, container: Container, sandbox: Sandbox,
        stripe_client: stripe.StripeClient) -> None:
    scenario, _ = start_renewal(container, stripe_client)
    pay_renewal(stripe_client, scenario)
    settle(live)
    events = stripe_events(sandbox, scenario.customer_id)
    rows = {r.event_id: r for r in inbox_rows(container)}
    assert set(rows) >= {e["id"] for e in events}
    for event in events:
        attempts = live.dispatcher.attempts_for(event["id"], live.endpoint_id)
        assert [a.status for a in attempts].count(200) >= 1
        # Handled once however often delivered; types without a handler are never run.
        assert (rows[event["id"]].status, rows[event["id"]].attempts) in (
            ("handled", 1), ("ignored", 0))
    assert any(len(live.dispatcher.attempts_for(e["id"])) == 2 for e in events)
    state = tenant_state(container, scenario.tenant_id)
    assert state["billing_status"] == "active" and state["payment_failures"] == 0
    assert state["current_plan"] == "starter" and state["api_access_enabled"] is True


def test_database_down_then_stripes_retry_lands_the_event(
        live: LiveApp, container: Container, stripe_client: stripe.StripeClient) -> None:
    live.dispatcher.configure(duplicate=False, shuffle_seconds=0.0)
    working = live.hooks.intake.db
    live.hooks.intake.db = Database("postgresql+psycopg://meterbill@127.0.0.1:1/meterbill")
    customer = stripe_client.v1.customers.create(params={"email": "later@example.com"})
    event_id = next(e for e in live.dispatcher.sandbox.store.all("event")
                    if e["type"] == "customer.created"
                    and e["data"]["object"]["id"] == customer.id)["id"]
    deadline = time.monotonic() + 10
    while not live.dispatcher.attempts_for(event_id):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    live.hooks.intake.db.dispose()
    live.hooks.intake.db = working
    settle(live)
    statuses = [a.status for a in live.dispatcher.attempts_for(event_id)]
    assert statuses[0] == 503 and statuses[-1] == 200
    assert [r.event_id for r in inbox_rows(container)].count(event_id) == 1
