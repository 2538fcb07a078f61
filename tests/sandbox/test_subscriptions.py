"""Subscriptions: creation and payment behaviours, trials, updates, cancellation, lists, items."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from .billing_setup import (
    DAY,
    HOUR,
    START,
    advance,
    clock_and_customer,
    events,
    make_meter,
    make_plan,
    report_usage,
    subscribe,
)

RENEWAL = START + 31 * DAY


@pytest.fixture
def pro(client: stripe.StripeClient) -> Any:
    return make_plan(client, make_meter(client), "pro")


def test_create_bills_the_first_period_and_is_active(client: stripe.StripeClient, sandbox,
                                                     pro) -> None:
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, pro, metadata={"tenant_id": "t1"})
    assert (sub.status, sub.test_clock, sub.customer) == ("active", clock.id, customer.id)
    assert sub["items"].object == "list" and len(sub["items"].data) == 2
    for item in sub["items"].data:
        assert (item.current_period_start, item.current_period_end) == (START, RENEWAL)
        assert item.subscription == sub.id and item.plan.id == item.price.id
    metered = next(i for i in sub["items"].data if i.price.id == pro.overage.id)
    assert "quantity" not in metered  # Stripe leaves the key out of metered items
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (invoice.billing_reason, invoice.status, invoice.amount_paid) == (
        "subscription_create", "paid", 9900)
    assert [e["type"] for e in events(sandbox) if "subscription" in e["type"]] == [
        "customer.subscription.created"]
    assert events(sandbox, "customer.subscription.created")[0]["data"]["object"]["status"] == \
        "active"


def test_error_if_incomplete_with_a_failing_card_creates_nothing(
        client: stripe.StripeClient, sandbox, pro) -> None:
    _, customer = clock_and_customer(client, card="pm_card_chargeCustomerFail")
    with pytest.raises(stripe.CardError) as info:
        subscribe(client, customer, pro, payment_behavior="error_if_incomplete")
    assert info.value.http_status == 402 and info.value.code == "card_declined"
    assert sandbox.store.all("subscription") == [] and sandbox.store.all("invoice") == []


def test_allow_incomplete_failure_expires_after_23_hours(client: stripe.StripeClient,
                                                         sandbox, pro) -> None:
    clock, customer = clock_and_customer(client, card="pm_card_chargeCustomerFail")
    sub = subscribe(client, customer, pro)
    assert sub.status == "incomplete"
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (invoice.status, invoice.attempt_count, invoice.next_payment_attempt) == (
        "open", 1, None)  # the first invoice is never retried
    advance(client, clock, START + 23 * HOUR - 1)
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete"
    advance(client, clock, START + 23 * HOUR)
    expired = client.v1.subscriptions.retrieve(sub.id)
    assert (expired.status, expired.ended_at) == ("incomplete_expired", START + 23 * HOUR)
    assert client.v1.invoices.retrieve(invoice.id).status == "void"
    update = events(sandbox, "customer.subscription.updated")[-1]["data"]
    assert update["previous_attributes"]["status"] == "incomplete"
    advance(client, clock, START + 40 * DAY)  # nothing more is billed
    assert len(client.v1.invoices.list(params={"subscription": sub.id}).data) == 1


def test_default_incomplete_waits_for_payment(client: stripe.StripeClient, sandbox,
                                              pro) -> None:
    _, customer = clock_and_customer(client)
    sub = subscribe(client, customer, pro, payment_behavior="default_incomplete",
                    expand=["latest_invoice.confirmation_secret"])
    assert sub.status == "incomplete"
    assert (sub.latest_invoice.status, sub.latest_invoice.attempt_count) == ("open", 0)
    assert sub.latest_invoice.confirmation_secret.client_secret.startswith("pi_")
    client.v1.invoices.pay(sub.latest_invoice.id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    assert events(sandbox, "customer.subscription.updated")[-1]["data"][
        "previous_attributes"]["status"] == "incomplete"


def test_no_payment_method_is_refused(client: stripe.StripeClient, pro) -> None:
    _, customer = clock_and_customer(client, card=None)
    with pytest.raises(stripe.InvalidRequestError, match="no attached payment source"):
        subscribe(client, customer, pro)


def test_subscription_payment_method_wins_over_the_customers(client: stripe.StripeClient,
                                                             pro) -> None:
    _, customer = clock_and_customer(client, card="pm_card_chargeCustomerFail")
    visa = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    sub = subscribe(client, customer, pro, default_payment_method=visa.id)
    assert sub.status == "active" and sub.default_payment_method == visa.id


def test_trial_then_first_paid_period(client: stripe.StripeClient, sandbox, pro) -> None:
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, pro, trial_period_days=14)
    trial_end = START + 14 * DAY
    assert (sub.status, sub.trial_start, sub.trial_end) == ("trialing", START, trial_end)
    zero = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (zero.amount_due, zero.status) == (0, "paid")
    assert events(sandbox, "customer.subscription.trial_will_end") == []
    advance(client, clock, trial_end - 3 * DAY)
    assert len(events(sandbox, "customer.subscription.trial_will_end")) == 1
    report_usage(client, customer, 500_000)  # usage in the trial is not billed
    advance(client, clock, trial_end + 2 * HOUR)
    after = client.v1.subscriptions.retrieve(sub.id)
    assert (after.status, after.billing_cycle_anchor) == ("active", trial_end)
    assert after["items"].data[0].current_period_end == START + 14 * DAY + 31 * DAY
    first = client.v1.invoices.retrieve(after.latest_invoice)
    assert (first.billing_reason, first.status, first.amount_paid) == (
        "subscription_cycle", "paid", 9900)


def test_a_short_trial_warns_at_once_and_trial_end_now_skips_it(
        client: stripe.StripeClient, sandbox, pro) -> None:
    _, customer = clock_and_customer(client)
    subscribe(client, customer, pro, trial_period_days=1)
    assert len(events(sandbox, "customer.subscription.trial_will_end")) == 1
    no_trial = subscribe(client, customer, pro, trial_end="now")
    assert no_trial.status == "active" and no_trial.trial_end is None


def test_end_a_trial_early_with_trial_end_now(client: stripe.StripeClient, pro) -> None:
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, pro, trial_period_days=30)
    advance(client, clock, START + 2 * DAY)
    ended = client.v1.subscriptions.update(sub.id, params={"trial_end": "now"})
    assert (ended.status, ended.trial_end) == ("active", START + 2 * DAY)
    assert ended["items"].data[0].current_period_start == START + 2 * DAY
    assert client.v1.invoices.retrieve(ended.latest_invoice).status == "draft"


def test_cancel_at_period_end(client: stripe.StripeClient, sandbox, pro) -> None:
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, pro)
    advance(client, clock, START + 3 * DAY)
    flagged = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert (flagged.cancel_at_period_end, flagged.cancel_at, flagged.status) == (
        True, RENEWAL, "active")
    previous = events(sandbox, "customer.subscription.updated")[-1]["data"][
        "previous_attributes"]
    assert previous["cancel_at_period_end"] is False and previous["cancel_at"] is None
    report_usage(client, customer, 150_000)
    advance(client, clock, RENEWAL + 2 * HOUR)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert (ended.status, ended.ended_at, ended.canceled_at) == ("canceled", RENEWAL,
                                                                 START + 3 * DAY)
    assert len(events(sandbox, "customer.subscription.deleted")) == 1
    final = client.v1.invoices.retrieve(ended.latest_invoice)  # only January's usage
    assert (final.amount_paid, final.status) == (4000, "paid")


def test_the_final_usage_line_ends_with_the_subscription(client: stripe.StripeClient,
                                                         pro) -> None:
    """Usage stamped at the very second of the end is still billed, but the line's period
    (and the invoice's) ends when the subscription ends, as on Stripe, not a second later;
    finalizing the draft (which reads the meter again) keeps it so."""
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, pro)
    client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    advance(client, clock, RENEWAL - 2 * HOUR)
    report_usage(client, customer, 100_000, timestamp=RENEWAL - 2 * HOUR)
    advance(client, clock, RENEWAL)
    draft = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert (draft.status, draft.lines.data[0].period.end) == ("draft", RENEWAL)
    report_usage(client, customer, 1_500, timestamp=RENEWAL)  # in the grace hour
    advance(client, clock, RENEWAL + 2 * HOUR)
    final = client.v1.invoices.retrieve(draft.id)
    assert final.status == "paid"
    [line] = final.lines.data
    assert (line.period.start, line.period.end) == (START, RENEWAL)
    assert (line.quantity, line.amount) == (101_500, 120)  # 1,500 over at 0.08
    assert (final.period_start, final.period_end) == (START, RENEWAL)


def test_cancel_now_with_invoice_now_and_prorate(client: stripe.StripeClient, sandbox,
                                                 pro) -> None:
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, pro)
    advance(client, clock, START + 15 * DAY + 12 * HOUR)  # half of January is left
    report_usage(client, customer, 110_000)
    canceled = client.v1.subscriptions.cancel(sub.id, params={"invoice_now": True,
                                                              "prorate": True})
    assert canceled.status == "canceled"
    assert canceled.cancellation_details.reason == "cancellation_requested"
    final = client.v1.invoices.retrieve(canceled.latest_invoice)
    amounts = sorted(line.amount for line in final.lines.data)
    assert amounts == [-4950, 800]  # half of 9900 credited; 10,000 queries over at 0.08
    assert final.total == -4150
    advance(client, clock, START + 16 * DAY + 13 * HOUR)
    assert client.v1.invoices.retrieve(final.id).amount_due == 0
    assert client.v1.customers.retrieve(customer.id).balance == -4150
    assert len(events(sandbox, "customer.subscription.deleted")) == 1
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.cancel(sub.id)


def test_price_swap_with_create_prorations_goes_on_the_next_invoice(
        client: stripe.StripeClient, sandbox) -> None:
    meter = make_meter(client)
    starter, pro = make_plan(client, meter, "starter"), make_plan(client, meter, "pro")
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, starter)
    advance(client, clock, START + 10 * DAY)
    base_item = next(i for i in sub["items"].data if i.price.id == starter.base.id)
    updated = client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": base_item.id, "price": pro.base.id}],
        "proration_date": START + 10 * DAY})
    assert updated.latest_invoice == sub.latest_invoice  # nothing invoiced now
    pending = client.v1.invoice_items.list(params={"customer": customer.id, "pending": True})
    assert sorted(i.amount for i in pending.data) == [-1965, 6706]  # 21 of 31 days
    event = events(sandbox, "customer.subscription.updated")[-1]["data"]
    assert event["previous_attributes"]["items"]["data"][0]["price"]["id"] == starter.base.id
    advance(client, clock, RENEWAL + 2 * HOUR)
    renewal = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert renewal.amount_paid == -1965 + 6706 + 9900
    assert client.v1.invoice_items.list(params={"customer": customer.id,
                                                "pending": True}).data == []


def test_proration_none_and_billing_cycle_anchor_now(client: stripe.StripeClient,
                                                     pro) -> None:
    meter = make_meter(client, "other_queries")
    starter = make_plan(client, meter, "starter")
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, starter)
    advance(client, clock, START + 10 * DAY)
    base_item = next(i for i in sub["items"].data if i.price.id == starter.base.id)
    client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": base_item.id, "quantity": 3}], "proration_behavior": "none"})
    assert client.v1.invoice_items.list(params={"customer": customer.id}).data == []
    reset = client.v1.subscriptions.update(sub.id, params={
        "billing_cycle_anchor": {"type": "now"}, "proration_behavior": "none"})
    assert reset.billing_cycle_anchor == START + 10 * DAY
    assert reset["items"].data[0].current_period_end == START + 10 * DAY + 31 * DAY
    invoice = client.v1.invoices.retrieve(reset.latest_invoice)
    assert (invoice.billing_reason, invoice.amount_paid) == ("subscription_update", 3 * 2900)


def test_a_future_billing_cycle_anchor_prorates_the_first_period(
        client: stripe.StripeClient, pro) -> None:
    clock, customer = clock_and_customer(client)
    anchor = START + 15 * DAY  # Jan 16: the first period is 15 of December 16's 31 days
    sub = subscribe(client, customer, pro, billing_cycle_anchor=anchor)
    assert sub["items"].data[0].current_period_end == anchor
    first = client.v1.invoices.retrieve(sub.latest_invoice)
    assert first.amount_paid == 4790  # 9900 × 15/31 = 4790.32
    assert first.lines.data[0].description == "Remaining time on Pro after 01 Jan 2026"
    advance(client, clock, anchor + 2 * HOUR)
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert renewed["items"].data[0].current_period_end == START + 46 * DAY  # Feb 16
    assert client.v1.invoices.retrieve(renewed.latest_invoice).amount_paid == 9900


def test_send_invoice_subscriptions_are_active_with_a_due_date(
        client: stripe.StripeClient, pro) -> None:
    _, customer = clock_and_customer(client, card=None)
    sub = subscribe(client, customer, pro, collection_method="send_invoice", days_until_due=30)
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (sub.status, invoice.status, invoice.attempt_count) == ("active", "draft", 0)
    assert invoice.due_date == START + 30 * DAY  # finalized an hour later (test_send_invoice)


def test_list_and_search(client: stripe.StripeClient, pro) -> None:
    _, customer = clock_and_customer(client)
    a = subscribe(client, customer, pro, metadata={"tenant_id": "t1"})
    b = subscribe(client, customer, pro, metadata={"tenant_id": "t2"})
    client.v1.subscriptions.cancel(b.id)
    default = client.v1.subscriptions.list(params={"customer": customer.id})
    assert [s.id for s in default.data] == [a.id]
    everything = client.v1.subscriptions.list(params={"status": "all"})
    assert {s.id for s in everything.data} == {a.id, b.id}
    assert [s.id for s in client.v1.subscriptions.list(params={"status": "canceled"}).data] \
        == [b.id]
    assert [s.id for s in client.v1.subscriptions.list(
        params={"price": pro.base.id}).data] == [a.id]
    found = client.v1.subscriptions.search(params={"query": "metadata['tenant_id']:'t1'"})
    assert [s.id for s in found.data] == [a.id]
    active = client.v1.subscriptions.search(params={"query": "status:'active'"})
    assert [s.id for s in active.data] == [a.id]


def test_subscription_item_endpoints(client: stripe.StripeClient, sandbox, pro) -> None:
    clock, customer = clock_and_customer(client)
    extra_product = client.v1.products.create(params={"name": "Seats"})
    seats = client.v1.prices.create(params={"product": extra_product.id, "currency": "usd",
                                            "unit_amount": 1000,
                                            "recurring": {"interval": "month"}})
    sub = subscribe(client, customer, pro)
    listed = client.v1.subscription_items.list(params={"subscription": sub.id})
    assert [i.price.id for i in listed.data] == [pro.base.id, pro.overage.id]
    added = client.v1.subscription_items.create(params={
        "subscription": sub.id, "price": seats.id, "quantity": 2,
        "proration_behavior": "none"})
    assert (added.quantity, added.subscription) == (2, sub.id)
    changed = client.v1.subscription_items.update(added.id, params={
        "quantity": 5, "proration_behavior": "none"})
    assert changed.quantity == 5
    gone = client.v1.subscription_items.delete(added.id, params={"proration_behavior": "none"})
    assert gone.deleted is True
    assert len(client.v1.subscriptions.retrieve(sub.id)["items"].data) == 2
    with pytest.raises(stripe.InvalidRequestError, match="metered"):
        client.v1.subscription_items.update(
            next(i.id for i in listed.data if i.price.id == pro.overage.id),
            params={"quantity": 2})


def test_items_are_validated(client: stripe.StripeClient, pro) -> None:
    _, customer = clock_and_customer(client)
    product = client.v1.products.create(params={"name": "Yearly"})
    yearly = client.v1.prices.create(params={"product": product.id, "currency": "usd",
                                             "unit_amount": 100000,
                                             "recurring": {"interval": "year"}})
    with pytest.raises(stripe.InvalidRequestError, match="same `recurring.interval`"):
        client.v1.subscriptions.create(params={
            "customer": customer.id, "items": [{"price": pro.base.id}, {"price": yearly.id}]})
    with pytest.raises(stripe.InvalidRequestError, match="same price"):
        client.v1.subscriptions.create(params={
            "customer": customer.id, "items": [{"price": pro.base.id}, {"price": pro.base.id}]})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.create(params={"customer": customer.id,
                                               "items": [{"price": "price_missing"}]})
    assert info.value.code == "resource_missing"


def test_deleting_the_customer_cancels_its_subscriptions(client: stripe.StripeClient,
                                                         pro) -> None:
    _, customer = clock_and_customer(client)
    sub = subscribe(client, customer, pro)
    client.v1.customers.delete(customer.id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_items_show_their_price_as_it_is_now(client: stripe.StripeClient, pro) -> None:
    _, customer = clock_and_customer(client)
    sub = subscribe(client, customer, pro)
    product = client.v1.products.retrieve(pro.base.product)
    client.v1.prices.create(params={"product": product.id, "currency": "usd",
                                    "unit_amount": 10900, "recurring": {"interval": "month"},
                                    "lookup_key": "pro_base", "transfer_lookup_key": True})
    client.v1.prices.update(pro.overage.id, params={"nickname": "Overage"})
    items = {i.price.id: i for i in client.v1.subscriptions.retrieve(sub.id)["items"].data}
    assert items[pro.base.id].price.lookup_key is None  # the key moved to the new price
    assert items[pro.overage.id].price.nickname == "Overage"
    assert items[pro.overage.id].plan.nickname == "Overage"
