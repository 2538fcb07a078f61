"""`billing_cycle_anchor_config`: a subscription billed on a day of the month, as Stripe does.

The anchor is the next occurrence of `day_of_month` (the month's last day when it is shorter)
at the given time of day UTC; the stretch until then is the first, prorated invoice (or free
with `proration_behavior=none`), and every full period starts on that day after.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

from .billing_setup import advance, clock_and_customer


def ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())  # type: ignore[misc]


def monthly_price(client: stripe.StripeClient, amount: int = 3100,
                  interval: str = "month") -> Any:
    product = client.v1.products.create(params={"name": "Seat"})
    return client.v1.prices.create(params={"currency": "usd", "product": product.id,
                                           "unit_amount": amount,
                                           "recurring": {"interval": interval}})


def subscribe_on(client: stripe.StripeClient, frozen: int, config: dict[str, int],
                 **extra: Any) -> tuple[Any, Any, Any]:
    clock, customer = clock_and_customer(client, start=frozen)
    price = monthly_price(client)
    sub = client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": price.id}],
        "billing_cycle_anchor_config": config, **extra})
    return clock, sub, client.v1.invoices.retrieve(sub.latest_invoice)


def test_the_first_of_the_month_prorates_the_first_invoice_then_bills_full_months(
        client: stripe.StripeClient) -> None:
    clock, sub, first = subscribe_on(client, ts(2026, 3, 15, 9), {"day_of_month": 1})
    assert sub.billing_cycle_anchor == ts(2026, 4, 1, 9)  # the time of day is kept
    assert sub.billing_cycle_anchor_config.to_dict() == {
        "day_of_month": 1, "hour": None, "minute": None, "month": None, "second": None}
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (ts(2026, 3, 15, 9),
                                                                    ts(2026, 4, 1, 9))
    # 17 of March's 31 days at 31.00 a month.
    assert (first.amount_due, first.status) == (1700, "paid")
    assert first.lines.data[0].description.startswith("Remaining time on Seat after 15 Mar")
    advance(client, clock, ts(2026, 4, 1, 12))
    renewal = [inv for inv in client.v1.invoices.list(params={"subscription": sub.id}).data
               if inv.billing_reason == "subscription_cycle"]
    assert [(inv.amount_due, inv.lines.data[0].period.start) for inv in renewal] == [
        (3100, ts(2026, 4, 1, 9))]
    now = client.v1.subscriptions.retrieve(sub.id)["items"].data[0]
    assert (now.current_period_start, now.current_period_end) == (ts(2026, 4, 1, 9),
                                                                  ts(2026, 5, 1, 9))


def test_the_given_time_of_day_and_no_proration(client: stripe.StripeClient) -> None:
    _, sub, first = subscribe_on(client, ts(2026, 3, 15, 9),
                                 {"day_of_month": 1, "hour": 0, "minute": 0, "second": 0},
                                 proration_behavior="none")
    assert sub.billing_cycle_anchor == ts(2026, 4, 1)
    assert first.amount_due == 0  # the stretch until the anchor is free


def test_day_31_anchors_on_short_months_last_day_and_comes_back(
        client: stripe.StripeClient) -> None:
    clock, sub, _ = subscribe_on(client, ts(2026, 2, 10), {"day_of_month": 31, "hour": 0,
                                                           "minute": 0, "second": 0})
    assert sub.billing_cycle_anchor == ts(2026, 2, 28)
    advance(client, clock, ts(2026, 3, 1))
    item = client.v1.subscriptions.retrieve(sub.id)["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (ts(2026, 2, 28),
                                                                    ts(2026, 3, 31))


def test_a_yearly_price_starts_full_years_in_the_given_month(
        client: stripe.StripeClient) -> None:
    _, customer = clock_and_customer(client, start=ts(2026, 5, 15))
    price = monthly_price(client, 12000, "year")
    sub = client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": price.id}],
        "billing_cycle_anchor_config": {"day_of_month": 1, "month": 3, "hour": 0}})
    assert sub.billing_cycle_anchor == ts(2027, 3, 1, 0, 0)


@pytest.mark.parametrize(("config", "extra", "param"), [
    ({"day_of_month": 32}, {}, "billing_cycle_anchor_config[day_of_month]"),
    ({"day_of_month": 1, "hour": 24}, {}, "billing_cycle_anchor_config[hour]"),
    ({"day_of_month": 1, "month": 3}, {}, "billing_cycle_anchor_config[month]"),
    ({"day_of_month": 1}, {"billing_cycle_anchor": ts(2026, 4, 1)},
     "billing_cycle_anchor_config"),
    ({"day_of_month": 1}, {"trial_period_days": 7}, "billing_cycle_anchor_config"),
])
def test_bad_configs_are_refused_naming_the_parameter(
        client: stripe.StripeClient, config: dict[str, int], extra: dict[str, Any],
        param: str) -> None:
    _, customer = clock_and_customer(client, start=ts(2026, 3, 15, 9))
    price = monthly_price(client)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.subscriptions.create(params={
            "customer": customer.id, "items": [{"price": price.id}],
            "billing_cycle_anchor_config": config, **extra})
    assert refused.value.param == param
    assert client.v1.subscriptions.list(params={"customer": customer.id}).data == []


def test_weekly_prices_take_no_anchor_config(client: stripe.StripeClient) -> None:
    _, customer = clock_and_customer(client, start=ts(2026, 3, 15, 9))
    price = monthly_price(client, interval="week")
    with pytest.raises(stripe.InvalidRequestError, match="monthly and yearly"):
        client.v1.subscriptions.create(params={
            "customer": customer.id, "items": [{"price": price.id}],
            "billing_cycle_anchor_config": {"day_of_month": 1}})
