"""Downgrades at the period end, end to end on a test clock: meterbill's schedule, the renewal
Stripe drafts, and the `customer.subscription.updated` webhook that brings the plan home."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

from meterbill.adapters.db.models import Subscription
from meterbill.adapters.db.repositories import TenantRepository
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents
from meterbill.ports.webhooks import parse_event
from stripe_sandbox import Sandbox

from .conftest import event_body

DAY = 86400
HOUR = 3600
START = int(datetime(2026, 1, 1, 9, tzinfo=UTC).timestamp())
FEB_1 = START + 31 * DAY
TENANT = "acme"


class Enterprise:
    """An Enterprise tenant (no trial) on a test clock; `advance` delivers the new events."""

    def __init__(self, container: Container, hooks: WebhookComponents,
                 client: stripe.StripeClient, sandbox: Sandbox) -> None:
        self.container, self.hooks, self.client, self.sandbox = container, hooks, client, sandbox
        self.clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": START})
        customer = client.v1.customers.create(params={
            "email": "billing@acme.test", "test_clock": self.clock.id,
            "metadata": {"tenant_id": TENANT}})
        with container.db.session() as session:
            TenantRepository(session).claim_customer(TENANT, "billing@acme.test", None,
                                                     customer.id)
        self.customer_id = customer.id
        self.seen: set[str] = set()
        view = container.subscriptions.create(TENANT, customer.id, "enterprise", trial_days=0,
                                              payment_method_id="pm_card_visa")
        if view.status == "incomplete":  # the first invoice waits to be paid
            client.v1.invoices.pay(str(view.latest_invoice))
        self.sub_id = view.id
        self.deliver()

    def deliver(self) -> None:
        for event in self.sandbox.store.all("event"):
            obj = event["data"]["object"]
            if event["id"] in self.seen or obj.get("customer") != self.customer_id:
                continue
            self.seen.add(event["id"])
            receipt = self.hooks.intake.store(parse_event(event_body(event)))
            if receipt.row_id is not None:
                self.hooks.processor.process(receipt.row_id)

    def advance(self, to: int) -> None:
        self.client.v1.test_helpers.test_clocks.advance(self.clock.id,
                                                        params={"frozen_time": to})
        self.deliver()

    def cycle_invoices(self) -> list[Any]:
        found = self.client.v1.invoices.list(params={"subscription": self.sub_id}).data
        return sorted((i for i in found if i.billing_reason == "subscription_cycle"),
                      key=lambda i: i.created)

    def base_lines(self, invoice: Any) -> list[tuple[str | None, int]]:
        """(lookup key, cents) of the licensed lines: the base fees."""
        out = []
        for line in invoice.lines.data:
            price = self.client.v1.prices.retrieve(line.pricing.price_details.price)
            if price.recurring.usage_type == "licensed":
                out.append((price.lookup_key, line.amount))
        return out

    def row(self) -> Subscription:
        with self.container.db.session() as session:
            row = session.get(Subscription, self.sub_id)
            assert row is not None
            session.expunge(row)
            return row


@pytest.fixture
def tenant(container: Container, hooks: WebhookComponents, stripe_client: stripe.StripeClient,
           sandbox: Sandbox) -> Enterprise:
    return Enterprise(container, hooks, stripe_client, sandbox)


def test_the_renewal_after_a_downgrade_bills_the_new_plan(tenant: Enterprise) -> None:
    tenant.advance(START + 14 * DAY)
    change = tenant.container.subscriptions.change_plan(tenant.sub_id, "pro")
    assert (change.effective, change.subscription.pending_plan) == ("period_end", "pro")
    assert change.subscription.plan_type == "enterprise"
    tenant.deliver()
    assert tenant.row().pending_plan == "pro"  # a webhook in between keeps it pending

    tenant.advance(FEB_1 + 2 * HOUR)
    renewal = tenant.cycle_invoices()[0]
    assert tenant.base_lines(renewal) == [("meterbill_pro_base_monthly", 9900)]
    assert renewal.amount_due == 9900  # not Enterprise's 49900, and no credit pending
    assert tenant.client.v1.invoice_items.list(
        params={"customer": tenant.customer_id}).data == []
    row = tenant.row()
    assert (row.plan_type, row.pending_plan, row.pending_plan_at) == ("pro", None, None)

    # The next renewal bills Pro again, with no credit line for the month before.
    tenant.advance(FEB_1 + 28 * DAY + 2 * HOUR)
    march = tenant.cycle_invoices()[1]
    assert [line.amount for line in march.lines.data if line.amount < 0] == []
    assert tenant.base_lines(march) == [("meterbill_pro_base_monthly", 9900)]
    # meterbill follows the new items: an upgrade now works on them.
    up = tenant.container.subscriptions.change_plan(tenant.sub_id, "enterprise")
    assert (up.effective, up.subscription.plan_type) == ("now", "enterprise")


def test_a_cancelled_downgrade_renews_on_the_current_plan(tenant: Enterprise) -> None:
    tenant.advance(START + 10 * DAY)
    tenant.container.subscriptions.change_plan(tenant.sub_id, "pro")
    kept = tenant.container.subscriptions.cancel_pending_change(tenant.sub_id)
    assert (kept.to_plan, kept.subscription.pending_plan) == ("enterprise", None)
    assert tenant.client.v1.subscriptions.retrieve(tenant.sub_id).schedule is None
    tenant.advance(FEB_1 + 2 * HOUR)
    assert tenant.base_lines(tenant.cycle_invoices()[0]) == [
        ("meterbill_enterprise_base_monthly", 49900)]
    assert tenant.row().plan_type == "enterprise"


def test_an_upgrade_while_a_downgrade_is_pending_happens_now(tenant: Enterprise) -> None:
    tenant.container.subscriptions.change_plan(tenant.sub_id, "starter")
    schedule_id = tenant.client.v1.subscriptions.retrieve(tenant.sub_id).schedule
    assert schedule_id is not None
    up = tenant.container.subscriptions.change_plan(tenant.sub_id, "pro")  # up from starter?
    # Pro is a downgrade from Enterprise too: it replaces the pending one.
    assert (up.effective, up.subscription.pending_plan) == ("period_end", "pro")
    assert tenant.client.v1.subscription_schedules.retrieve(schedule_id).status == "released"
    tenant.advance(START + 5 * DAY)
    back = tenant.container.subscriptions.change_plan(tenant.sub_id, "enterprise")
    assert (back.effective, back.subscription.pending_plan) == ("now", None)
    assert tenant.client.v1.subscriptions.retrieve(tenant.sub_id).schedule is None
    assert tenant.client.v1.subscription_schedules.list(
        params={"customer": tenant.customer_id}).data[0].status == "released"


def test_an_upgrade_above_the_current_plan_releases_the_downgrade(
        container: Container, hooks: WebhookComponents, stripe_client: stripe.StripeClient,
        sandbox: Sandbox) -> None:
    clock = stripe_client.v1.test_helpers.test_clocks.create(params={"frozen_time": START})
    customer = stripe_client.v1.customers.create(params={
        "email": "billing@acme.test", "test_clock": clock.id, "metadata": {"tenant_id": TENANT}})
    with container.db.session() as session:
        TenantRepository(session).claim_customer(TENANT, "billing@acme.test", None, customer.id)
    sub = container.subscriptions.create(TENANT, customer.id, "pro", trial_days=0,
                                         payment_method_id="pm_card_visa")
    if sub.status == "incomplete":
        stripe_client.v1.invoices.pay(str(sub.latest_invoice))
        container.subscriptions.resume(sub.id)  # reads Stripe's state: active
    container.subscriptions.change_plan(sub.id, "starter")
    up = container.subscriptions.change_plan(sub.id, "enterprise")
    assert (up.effective, up.to_plan, up.subscription.pending_plan) == ("now", "enterprise",
                                                                         None)
    assert up.proration_invoice is not None
    now = stripe_client.v1.subscriptions.retrieve(sub.id)
    assert now.schedule is None
    assert sorted(i.price.lookup_key for i in now["items"].data)[0] == \
        "meterbill_enterprise_base_monthly"
