"""Fixtures for webhook tests: wired webhook components, signing, and a billing scenario.

`hooks` wires webhook processing on the test's container by hand (so the tests do not depend on
bootstrap knowing about webhooks) with a `ManualRunner` that only records what was submitted;
tests run the processor themselves. `renewal` plays a month of billing on a test clock in the
sandbox: a subscription starts paid, its renewal fails on a declining card, then is paid.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import stripe
from sqlalchemy import delete

from meterbill.adapters.db.inbox import InboxRepository, WebhookEvent
from meterbill.adapters.db.models import Tenant
from meterbill.adapters.db.repositories import TenantRepository
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents, build_webhooks, webhook_options
from meterbill.config import Settings
from meterbill.services.webhooks.options import WebhookOptions
from meterbill.services.webhooks.processor import ProcessResult
from stripe_sandbox import Sandbox
from stripe_sandbox.listing import public
from stripe_sandbox.wire import dumps

SECRET = "whsec_test_meterbill_0123456789abcdef"
OLD_SECRET = "whsec_test_meterbill_old_secret_0000"


class ManualRunner:
    """A TaskRunner that records row ids; `run_all` processes them, in order, here."""

    def __init__(self) -> None:
        self.submitted: list[int] = []
        self.components: WebhookComponents | None = None

    def submit(self, row_id: int) -> None:
        self.submitted.append(row_id)

    def run_all(self) -> list[ProcessResult]:
        assert self.components is not None
        results = []
        while self.submitted:
            results.append(self.components.processor.process(self.submitted.pop(0)))
        return results

    def close(self) -> None:
        pass


def make_options(**changes: Any) -> WebhookOptions:
    values: dict[str, Any] = {"signing_secrets": (SECRET,), "retry_base_seconds": 10.0,
                              "max_attempts": 3, "lease_seconds": 60.0,
                              "sweep_after_seconds": 0.0, "rate_limit_per_minute": 0}
    values.update(changes)
    return webhook_options(Settings(_env_file=None), **values)  # type: ignore[call-arg]


@pytest.fixture
def hooks(container: Container) -> Iterator[WebhookComponents]:
    runner = ManualRunner()
    components = build_webhooks(container, options=make_options(), runner=runner)
    runner.components = components
    try:
        yield components
    finally:
        components.close()


def sign(payload: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(
        payload.decode(), secret, int(time.time()) if timestamp is None else timestamp)


def event_body(event: dict[str, Any]) -> bytes:
    """An event as the sandbox (and Stripe) sends it."""
    return dumps(public(event))


def fake_event(event_type: str = "product.created", obj: dict[str, Any] | None = None,
               event_id: str = "evt_test_000000000001") -> bytes:
    return dumps({"id": event_id, "object": "event", "type": event_type,
                  "created": int(time.time()), "api_version": "2026-10-28.endive",
                  "livemode": False, "pending_webhooks": 1,
                  "data": {"object": obj or {"id": "prod_x", "object": "product"}}})


@dataclass
class Renewal:
    """A tenant's month on a test clock; `events` are Stripe's, oldest first."""

    tenant_id: str
    customer_id: str
    subscription_id: str
    renewal_invoice: str
    events: list[dict[str, Any]] = field(default_factory=list)


def inbox_rows(container: Container) -> list[WebhookEvent]:
    with container.db.session() as session:
        return list(InboxRepository(session).recent(limit=10_000))


def tenant_state(container: Container, tenant_id: str) -> dict[str, Any]:
    with container.db.session() as session:
        row = TenantRepository(session).get(tenant_id)
        assert row is not None
        return {k: getattr(row, k) for k in (
            "stripe_subscription_id", "current_plan", "billing_status", "payment_failures",
            "api_access_enabled", "rate_limit_multiplier", "last_payment_date")}


def reset_tenant(container: Container, tenant_id: str) -> None:
    """Back to what meterbill knew before any webhook: a tenant with a customer, nothing else."""
    from meterbill.adapters.db.models import Subscription

    with container.db.session() as session:
        session.execute(delete(WebhookEvent))
        session.execute(delete(Subscription).where(Subscription.tenant_id == tenant_id))
        row = TenantRepository(session).get(tenant_id)
        assert isinstance(row, Tenant)
        row.stripe_subscription_id = row.current_plan = row.last_payment_date = None
        row.billing_status, row.payment_failures = "none", 0
        row.api_access_enabled, row.rate_limit_multiplier = False, 0.0


def start_renewal(container: Container, client: stripe.StripeClient,
                  tenant_id: str = "acme") -> tuple[Renewal, Any]:
    """A paid first month, then a renewal that fails on a declining card (not yet paid)."""
    now = int(time.time())
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": now})
    customer = client.v1.customers.create(params={
        "email": f"{tenant_id}@example.com", "test_clock": clock.id,
        "payment_method": "pm_card_visa",
        "invoice_settings": {"default_payment_method": "pm_card_visa"},
        "metadata": {"tenant_id": tenant_id}})
    with container.db.session() as session:
        TenantRepository(session).claim_customer(tenant_id, f"{tenant_id}@example.com", None,
                                                 customer.id)
    plan = container.catalog.get("starter")
    prices = container.gateway.prices_by_lookup_key(
        [plan.base_lookup_key, plan.overage_lookup_key])
    subscription = client.v1.subscriptions.create(params={
        "customer": customer.id,
        "items": [{"price": prices[plan.base_lookup_key].id, "quantity": 1},
                  {"price": prices[plan.overage_lookup_key].id}],
        "metadata": {"tenant_id": tenant_id, "plan_type": "starter"}})
    failing = client.v1.payment_methods.attach("pm_card_chargeCustomerFail",
                                               params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={
        "invoice_settings": {"default_payment_method": failing.id}})
    client.v1.test_helpers.test_clocks.advance(clock.id,
                                               params={"frozen_time": now + 32 * 86400})
    current = client.v1.subscriptions.retrieve(subscription.id)
    assert current.status == "past_due"
    renewal = Renewal(tenant_id, customer.id, subscription.id, str(current.latest_invoice))
    return renewal, customer


def pay_renewal(client: stripe.StripeClient, renewal: Renewal) -> None:
    good = client.v1.payment_methods.attach("pm_card_visa",
                                            params={"customer": renewal.customer_id})
    client.v1.customers.update(renewal.customer_id, params={
        "invoice_settings": {"default_payment_method": good.id}})
    paid = client.v1.invoices.pay(renewal.renewal_invoice)
    assert paid.status == "paid"


def stripe_events(sandbox: Sandbox, customer_id: str) -> list[dict[str, Any]]:
    """The sandbox's events about one customer (and its objects), oldest first."""
    found = []
    for event in sandbox.store.all("event"):
        obj = event["data"]["object"]
        if obj.get("customer") == customer_id or obj.get("id") == customer_id:
            found.append(event)
    return found


@pytest.fixture
def renewal(container: Container, stripe_client: stripe.StripeClient,
            sandbox: Sandbox) -> Renewal:
    """The whole month: first invoice paid, renewal failed, then paid."""
    scenario, _ = start_renewal(container, stripe_client)
    pay_renewal(stripe_client, scenario)
    scenario.events = stripe_events(sandbox, scenario.customer_id)
    return scenario
