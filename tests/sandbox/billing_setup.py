"""Shared setup for the billing tests: the mission's plans, a test clock, usage, events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe

from stripe_sandbox import Sandbox

DAY = 86400
HOUR = 3600
START = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())  # periods: Jan 1 → Feb 1 → Mar 1


@dataclass
class Plan:
    name: str
    base: Any  # licensed monthly price
    overage: Any  # graduated metered price: `included` free, then `rate` cents per query


# The mission's plans: base fee in cents, queries included, cents per query beyond.
PLANS = {
    "starter": (2900, 50_000, "0.1"),
    "pro": (9900, 100_000, "0.08"),
    "enterprise": (49900, 1_000_000, "0.05"),
}


def make_meter(client: stripe.StripeClient, event_name: str = "queries") -> Any:
    return client.v1.billing.meters.create(params={
        "display_name": "Queries", "event_name": event_name,
        "default_aggregation": {"formula": "sum"},
    })


def make_plan(client: stripe.StripeClient, meter: Any, name: str) -> Plan:
    base_cents, included, rate = PLANS[name]
    product = client.v1.products.create(params={"name": name.title()})
    base = client.v1.prices.create(params={
        "product": product.id, "currency": "usd", "unit_amount": base_cents,
        "recurring": {"interval": "month"}, "lookup_key": f"{name}_base",
    })
    overage = client.v1.prices.create(params={
        "product": product.id, "currency": "usd", "billing_scheme": "tiered",
        "tiers_mode": "graduated",
        "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        "tiers": [{"up_to": included, "unit_amount": 0},
                  {"up_to": "inf", "unit_amount_decimal": rate}],
    })
    return Plan(name, base, overage)


def clock_and_customer(client: stripe.StripeClient, card: str | None = "pm_card_visa",
                       start: int = START) -> tuple[Any, Any]:
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": start})
    params: dict[str, Any] = {"email": "tenant@example.com", "test_clock": clock.id}
    if card:
        params.update(payment_method=card, invoice_settings={"default_payment_method": card})
    return clock, client.v1.customers.create(params=params)


def subscribe(client: stripe.StripeClient, customer: Any, plan: Plan, **extra: Any) -> Any:
    return client.v1.subscriptions.create(params={
        "customer": customer.id,
        "items": [{"price": plan.base.id}, {"price": plan.overage.id}],
        **extra,
    })


def advance(client: stripe.StripeClient, clock: Any, to: int) -> Any:
    return client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": to})


def report_usage(client: stripe.StripeClient, customer: Any, value: int,
                 event_name: str = "queries", timestamp: int | None = None) -> None:
    params: dict[str, Any] = {"event_name": event_name,
                              "payload": {"stripe_customer_id": customer.id, "value": str(value)}}
    if timestamp is not None:
        params["timestamp"] = timestamp
    client.v1.billing.meter_events.create(params=params)


def events(sandbox: Sandbox, event_type: str | None = None) -> list[dict[str, Any]]:
    return [e for e in sandbox.store.all("event")
            if event_type is None or e["type"] == event_type]


def record_clock_times(sandbox: Sandbox, clock_id: str) -> list[tuple[str, int, dict[str, Any]]]:
    """(event type, the clock's time when it was sent, object) for every event from now on."""
    seen: list[tuple[str, int, dict[str, Any]]] = []

    def listener(event: dict[str, Any]) -> None:
        seen.append((event["type"], sandbox.now(clock_id), event["data"]["object"]))

    sandbox.listeners.append(listener)
    return seen
