"""Metered usage across a mid-period price change (Stripe's "Manage your usage-based billing
setup", section "Update prices mid-cycle"): in flexible billing mode the old price bills the
usage up to the change on an invoice item that follows `proration_behavior`, the new price bills
only what comes after; in classic mode the usage before the change is not billed."""

from __future__ import annotations

from typing import Any

import stripe

from .billing_setup import (
    DAY,
    HOUR,
    START,
    advance,
    clock_and_customer,
    make_meter,
    make_plan,
    report_usage,
    subscribe,
)

RENEWAL = START + 31 * DAY  # Feb 1
CHANGE = START + 10 * DAY  # Jan 11


def _swap(client: stripe.StripeClient, sub: Any, old: Any, new: Any, proration: str) -> Any:
    items = {item.price.id: item for item in sub["items"].data}
    return client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": items[old.base.id].id, "price": new.base.id},
                  {"id": items[old.overage.id].id, "price": new.overage.id}],
        "proration_behavior": proration,
    })


def _lines(invoice: Any) -> list[tuple[str, int, int]]:
    """(price, quantity, amount) of every line."""
    return sorted((line.pricing.price_details.price, int(line.quantity or 0), line.amount)
                  for line in invoice.lines.data)


def _setup(client: stripe.StripeClient, **extra: Any) -> tuple[Any, Any, Any, Any, Any]:
    meter = make_meter(client)
    starter, pro = make_plan(client, meter, "starter"), make_plan(client, meter, "pro")
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, starter, **extra)
    advance(client, clock, CHANGE - HOUR)
    report_usage(client, customer, 70_000)  # Starter: 50,000 included, then 0.1 cent
    advance(client, clock, CHANGE)
    return clock, customer, sub, starter, pro


def _after_change(client: stripe.StripeClient, clock: Any, customer: Any) -> None:
    advance(client, clock, CHANGE + DAY)
    report_usage(client, customer, 150_000)  # Pro: 100,000 included, then 0.08 cent
    advance(client, clock, RENEWAL + 2 * HOUR)


def _renewal(client: stripe.StripeClient, sub: Any) -> Any:
    invoice = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert invoice.billing_reason == "subscription_cycle"
    return invoice


def test_always_invoice_bills_the_old_price_usage_at_the_change(
        client: stripe.StripeClient) -> None:
    clock, customer, sub, starter, pro = _setup(client)
    updated = _swap(client, sub, starter, pro, "always_invoice")
    change = client.v1.invoices.retrieve(updated.latest_invoice)
    assert change.billing_reason == "subscription_update"
    # 21 of 31 days remain: -1965 / +6706; 70,000 on Starter's tiers: 20,000 × 0.1 cent.
    assert _lines(change) == sorted([(starter.base.id, 1, -1965), (pro.base.id, 1, 6706),
                                     (starter.overage.id, 70_000, 2000)])
    usage_line = next(line for line in change.lines.data
                      if line.pricing.price_details.price == starter.overage.id)
    details = usage_line.parent.subscription_item_details
    assert details.proration is False
    assert (usage_line.period.start, usage_line.period.end) == (START, CHANGE)
    assert change.status == "paid" and change.amount_paid == 1965 * -1 + 6706 + 2000

    _after_change(client, clock, customer)
    renewal = _renewal(client, sub)
    # Pro's tiers meet only the 150,000 after the change: 50,000 × 0.08 cent; no Starter line.
    assert _lines(renewal) == sorted([(pro.base.id, 1, 9900), (pro.overage.id, 150_000, 4000)])
    line = next(x for x in renewal.lines.data
                if x.pricing.price_details.price == pro.overage.id)
    assert (line.period.start, line.period.end) == (CHANGE, RENEWAL)


def test_create_prorations_leaves_the_usage_item_for_the_renewal(
        client: stripe.StripeClient) -> None:
    clock, customer, sub, starter, pro = _setup(client)
    updated = _swap(client, sub, starter, pro, "create_prorations")
    assert updated.latest_invoice == sub.latest_invoice  # no invoice at the change
    pending = client.v1.invoice_items.list(params={"customer": customer.id, "pending": True})
    assert sorted((i.amount, i.proration) for i in pending.data) == [
        (-1965, True), (2000, False), (6706, True)]
    _after_change(client, clock, customer)
    renewal = _renewal(client, sub)
    assert _lines(renewal) == sorted([
        (starter.base.id, 1, -1965), (pro.base.id, 1, 6706), (starter.overage.id, 70_000, 2000),
        (pro.base.id, 1, 9900), (pro.overage.id, 150_000, 4000)])


def test_proration_none_does_not_bill_the_old_price_usage(client: stripe.StripeClient) -> None:
    clock, customer, sub, starter, pro = _setup(client)
    _swap(client, sub, starter, pro, "none")
    _after_change(client, clock, customer)
    assert _lines(_renewal(client, sub)) == sorted([(pro.base.id, 1, 9900),
                                                    (pro.overage.id, 150_000, 4000)])


def test_classic_billing_mode_drops_the_usage_before_the_change(
        client: stripe.StripeClient) -> None:
    clock, customer, sub, starter, pro = _setup(client, billing_mode={"type": "classic"})
    updated = _swap(client, sub, starter, pro, "always_invoice")
    change = client.v1.invoices.retrieve(updated.latest_invoice)
    assert _lines(change) == sorted([(starter.base.id, 1, -1965), (pro.base.id, 1, 6706)])
    _after_change(client, clock, customer)
    assert _lines(_renewal(client, sub)) == sorted([(pro.base.id, 1, 9900),
                                                    (pro.overage.id, 150_000, 4000)])


def test_a_metered_item_deleted_mid_period_bills_its_usage(client: stripe.StripeClient) -> None:
    clock, customer, sub, starter, _ = _setup(client)
    item = next(i for i in sub["items"].data if i.price.id == starter.overage.id)
    client.v1.subscription_items.delete(item.id, params={"proration_behavior": "always_invoice"})
    invoice = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert _lines(invoice) == [(starter.overage.id, 70_000, 2000)]
