"""One billing scenario, through the official client, that makes one of every resource type.

`run(client)` creates a customer with a card, a product with a licensed and a metered price, a
billing meter with events, an adjustment and a summary, a subscription (so an invoice with line
items) and its schedule, an invoice item, a test clock, a webhook endpoint and a portal
session, and collects every response per resource type (`object`). A step that fails records
the error and the steps that need its result record that they were blocked, so each resource
reports on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import stripe

RESOURCES = (
    "customer",
    "payment_method",
    "product",
    "price",
    "billing.meter",
    "billing.meter_event",
    "billing.meter_event_adjustment",
    "billing.meter_event_summary",
    "subscription",
    "subscription_item",
    "subscription_schedule",
    "invoice",
    "line_item",
    "invoiceitem",
    "test_helpers.test_clock",
    "event",
    "webhook_endpoint",
    "billing_portal.session",
)

EVENT_NAME = "fidelity_queries"


class Blocked(Exception):
    """A step could not run because a step it needs failed."""


@dataclass
class Sample:
    source: str  # the call that returned it, e.g. "v1.customers.create"
    obj: stripe.StripeObject


@dataclass
class Outcome:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Scenario:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client
        self.outcomes: dict[str, Outcome] = {name: Outcome() for name in RESOURCES}
        self.made: dict[str, Any] = {}

    def need(self, key: str) -> Any:
        if self.made.get(key) is None:
            raise Blocked(f"needs the {key} step, which failed")
        return self.made[key]

    def step(self, resource: str, source: str, call: Callable[[], Any], key: str = "") -> Any:
        """Run one call; record its response under `resource` (and under `key` for later)."""
        try:
            obj = call()
        except Blocked as error:
            self.outcomes[resource].errors.append(f"{source}: blocked, {error}")
            return None
        except stripe.StripeError as error:
            self.outcomes[resource].errors.append(
                f"{source}: {type(error).__name__} {error.http_status} {error.user_message}"
            )
            return None
        self.outcomes[resource].samples.append(Sample(source, obj))
        if key:
            self.made[key] = obj
        return obj

    def collect(self, resource: str, source: str, objs: Callable[[], list[Any]]) -> None:
        """Record objects found inside another response (list pages, embedded items)."""
        try:
            found = objs()
        except Blocked as error:
            self.outcomes[resource].errors.append(f"{source}: blocked, {error}")
            return
        except stripe.StripeError as error:
            self.outcomes[resource].errors.append(
                f"{source}: {type(error).__name__} {error.http_status} {error.user_message}"
            )
            return
        if not found:
            self.outcomes[resource].errors.append(f"{source}: returned no {resource}")
        for index, obj in enumerate(found):
            self.outcomes[resource].samples.append(Sample(f"{source}[{index}]", obj))


def _id(value: Any) -> str:
    return value if isinstance(value, str) else value.id


def run(client: stripe.StripeClient) -> dict[str, Outcome]:
    s = Scenario(client)
    v1 = client.v1
    now = int(time.time())

    s.step("test_helpers.test_clock", "v1.test_helpers.test_clocks.create",
           lambda: v1.test_helpers.test_clocks.create(
               params={"frozen_time": now, "name": "fidelity"}), key="clock")
    s.step("test_helpers.test_clock", "v1.test_helpers.test_clocks.advance",
           lambda: v1.test_helpers.test_clocks.advance(
               s.need("clock").id, params={"frozen_time": now + 3600}))
    s.step("test_helpers.test_clock", "v1.test_helpers.test_clocks.retrieve",
           lambda: v1.test_helpers.test_clocks.retrieve(s.need("clock").id))

    s.step("customer", "v1.customers.create", lambda: v1.customers.create(
        params={"email": "fidelity@example.com", "name": "Fidelity Ltd",
                "metadata": {"tenant_id": "t-fidelity"}}), key="customer")
    s.step("payment_method", "v1.payment_methods.attach", lambda: v1.payment_methods.attach(
        "pm_card_visa", params={"customer": s.need("customer").id}), key="pm")
    s.step("payment_method", "v1.payment_methods.retrieve",
           lambda: v1.payment_methods.retrieve(s.need("pm").id))
    s.step("customer", "v1.customers.update", lambda: v1.customers.update(
        s.need("customer").id,
        params={"invoice_settings": {"default_payment_method": s.need("pm").id}}))

    s.step("product", "v1.products.create",
           lambda: v1.products.create(params={"name": "Pro"}), key="product")
    s.step("price", "v1.prices.create (licensed)", lambda: v1.prices.create(params={
        "currency": "usd", "product": s.need("product").id, "unit_amount": 4900,
        "recurring": {"interval": "month"}, "lookup_key": "fidelity_pro_monthly"}),
        key="base_price")

    s.step("billing.meter", "v1.billing.meters.create", lambda: v1.billing.meters.create(params={
        "display_name": "Queries", "event_name": EVENT_NAME,
        "default_aggregation": {"formula": "sum"},
        "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
        "value_settings": {"event_payload_key": "value"}}), key="meter")
    s.step("billing.meter", "v1.billing.meters.retrieve",
           lambda: v1.billing.meters.retrieve(s.need("meter").id))
    s.step("price", "v1.prices.create (metered, graduated)", lambda: v1.prices.create(params={
        "currency": "usd", "product": s.need("product").id,
        "billing_scheme": "tiered", "tiers_mode": "graduated",
        "tiers": [{"up_to": 100000, "unit_amount": 0},
                  {"up_to": "inf", "unit_amount_decimal": "0.1"}],
        "recurring": {"interval": "month", "usage_type": "metered",
                      "meter": s.need("meter").id}}), key="metered_price")

    def meter_event(identifier: str, value: str) -> Any:
        return v1.billing.meter_events.create(params={
            "event_name": EVENT_NAME, "identifier": identifier, "timestamp": now - 60,
            "payload": {"stripe_customer_id": s.need("customer").id, "value": value}})

    s.step("billing.meter_event", "v1.billing.meter_events.create",
           lambda: meter_event("fidelity-1", "25"))
    s.step("billing.meter_event", "v1.billing.meter_events.create (to cancel)",
           lambda: meter_event("fidelity-2", "5"), key="cancelled_event")
    s.step("billing.meter_event_adjustment", "v1.billing.meter_event_adjustments.create",
           lambda: v1.billing.meter_event_adjustments.create(params={
               "event_name": EVENT_NAME, "type": "cancel",
               "cancel": {"identifier": s.need("cancelled_event").identifier}}))
    minute = now // 60 * 60
    s.collect("billing.meter_event_summary", "v1.billing.meters.event_summaries.list",
              lambda: v1.billing.meters.event_summaries.list(s.need("meter").id, params={
                  "customer": s.need("customer").id,
                  "start_time": minute - 3600, "end_time": minute + 60}).data)

    def subscription_items() -> list[dict[str, str]]:
        # The metered item when meters work; a failure there must not hide subscriptions.
        items = [{"price": s.need("base_price").id}]
        if s.made.get("metered_price") is not None:
            items.append({"price": s.made["metered_price"].id})
        return items

    s.step("subscription", "v1.subscriptions.create", lambda: v1.subscriptions.create(params={
        "customer": s.need("customer").id, "default_payment_method": s.need("pm").id,
        "items": subscription_items()}), key="subscription")
    s.step("subscription", "v1.subscriptions.retrieve",
           lambda: v1.subscriptions.retrieve(s.need("subscription").id))
    s.collect("subscription_item", "v1.subscriptions.create items.data",
              lambda: list(s.need("subscription")["items"].data))
    s.step("subscription_item", "v1.subscription_items.retrieve",
           lambda: v1.subscription_items.retrieve(s.need("subscription")["items"].data[0].id))

    s.step("subscription_schedule", "v1.subscription_schedules.create (from_subscription)",
           lambda: v1.subscription_schedules.create(params={
               "from_subscription": s.need("subscription").id}), key="schedule")

    def next_phase() -> Any:
        current = s.need("schedule").phases[0]
        return v1.subscription_schedules.update(s.need("schedule").id, params={
            "end_behavior": "release",
            "phases": [
                {"items": [{"price": i.price, **({"quantity": getattr(i, "quantity", None)}
                                                 if getattr(i, "quantity", None) else {})}
                           for i in current["items"]],
                 "start_date": current.start_date, "end_date": current.end_date},
                {"items": [{"price": s.need("base_price").id, "quantity": 2}]},
            ]})

    s.step("subscription_schedule", "v1.subscription_schedules.update", next_phase)
    s.step("subscription_schedule", "v1.subscription_schedules.retrieve",
           lambda: v1.subscription_schedules.retrieve(s.need("schedule").id))
    s.collect("subscription_schedule", "v1.subscription_schedules.list",
              lambda: v1.subscription_schedules.list().data)
    s.step("subscription_schedule", "v1.subscription_schedules.release",
           lambda: v1.subscription_schedules.release(s.need("schedule").id))

    s.step("invoice", "v1.invoices.retrieve (latest_invoice)", lambda: v1.invoices.retrieve(
        _id(s.need("subscription").latest_invoice or _blocked("latest_invoice is null"))),
        key="invoice")
    s.collect("line_item", "v1.invoices.retrieve lines.data",
              lambda: list(s.need("invoice").lines.data))
    s.collect("line_item", "v1.invoices.line_items.list",
              lambda: v1.invoices.line_items.list(s.need("invoice").id).data)
    s.step("invoiceitem", "v1.invoice_items.create", lambda: v1.invoice_items.create(params={
        "customer": s.need("customer").id, "amount": 1500, "currency": "usd",
        "description": "Onboarding"}))

    s.step("webhook_endpoint", "v1.webhook_endpoints.create",
           lambda: v1.webhook_endpoints.create(params={
               "url": "https://example.com/hooks/stripe",
               "enabled_events": ["invoice.paid", "invoice.payment_failed"]}))
    s.step("billing_portal.session", "v1.billing_portal.sessions.create",
           lambda: v1.billing_portal.sessions.create(params={
               "customer": s.need("customer").id, "return_url": "https://example.com/account"}))

    # Last, so that the page holds the events of everything above.
    s.collect("event", "v1.events.list",
              lambda: v1.events.list(params={"limit": 5}).data)
    s.step("event", "v1.events.retrieve", lambda: v1.events.retrieve(
        (s.outcomes["event"].samples or _blocked("events.list returned nothing"))[0].obj.id))
    return s.outcomes


def _blocked(reason: str) -> Any:
    raise Blocked(reason)
