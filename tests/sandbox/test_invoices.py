"""Invoices: the mission's amounts, proration, manual invoices, payment, previews, pages."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
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
from .stripe_reference import fixtures

RENEWAL = START + 31 * DAY  # Feb 1


def missing_keys(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Keys of Stripe's example object absent from ours (into nested objects and lists)."""
    if not isinstance(expected, dict) or not isinstance(actual, dict):
        if isinstance(expected, list) and expected and isinstance(actual, list) and actual:
            return missing_keys(expected[0], actual[0], path + "[0]")
        return []
    found = []
    for key, value in expected.items():
        if key not in actual:
            found.append(f"{path}.{key}")
        elif key != "metadata":
            found += missing_keys(value, actual[key], f"{path}.{key}")
    return found


def fixture(name: str) -> dict[str, Any]:
    example: dict[str, Any] = fixtures()[name]
    return example


def cents(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --- the mission's amounts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan_name", "queries", "amount_due"),
    [("pro", 125_000, 11900), ("starter", 10_000, 2900), ("enterprise", 1_200_000, 59900)],
)
def test_renewal_invoice_bills_next_period_and_last_periods_overage(
        client: stripe.StripeClient, plan_name: str, queries: int, amount_due: int) -> None:
    plan = make_plan(client, make_meter(client), plan_name)
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, plan)
    advance(client, clock, START + 10 * DAY)
    report_usage(client, customer, queries // 2)
    report_usage(client, customer, queries - queries // 2)
    advance(client, clock, RENEWAL + 2 * HOUR)

    renewals = [inv for inv in client.v1.invoices.list(params={"subscription": sub.id}).data
                if inv.billing_reason == "subscription_cycle"]
    assert len(renewals) == 1
    invoice = renewals[0]
    assert (invoice.status, invoice.amount_due, invoice.amount_paid) == ("paid", amount_due,
                                                                         amount_due)
    by_price = {line.pricing.price_details.price: line for line in invoice.lines.data}
    base, overage = by_price[plan.base.id], by_price[plan.overage.id]
    assert base.amount == plan.base.unit_amount  # in advance, for Feb 1 → Mar 1
    assert (base.period.start, base.period.end) == (RENEWAL, START + 59 * DAY)
    assert overage.quantity == queries  # in arrears, for Jan 1 → Feb 1
    assert (overage.period.start, overage.period.end) == (START, RENEWAL)
    assert overage.amount == amount_due - plan.base.unit_amount
    assert invoice.parent.subscription_details.subscription == sub.id
    assert missing_keys(fixture("invoice"), invoice.to_dict()) == []


def test_mid_period_upgrade_with_always_invoice_charges_the_proration(
        client: stripe.StripeClient, sandbox) -> None:
    meter = make_meter(client)
    starter, pro = make_plan(client, meter, "starter"), make_plan(client, meter, "pro")
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, starter)
    change_at = START + 10 * DAY + 7 * HOUR
    advance(client, clock, change_at)
    items = {item.price.id: item for item in sub["items"].data}
    updated = client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": items[starter.base.id].id, "price": pro.base.id},
                  {"id": items[starter.overage.id].id, "price": pro.overage.id}],
        "proration_behavior": "always_invoice",
    })

    item = updated["items"].data[0]
    start, end = item.current_period_start, item.current_period_end
    assert (start, end) == (START, RENEWAL)  # the period is unchanged
    unused = Decimal(end - change_at) / Decimal(end - start)  # by the second
    credit, charge = -cents(2900 * unused), cents(9900 * unused)
    assert (credit, charge) == (-1937, 6613)  # 1,789,200 of 2,678,400 seconds remain

    invoice = client.v1.invoices.retrieve(updated.latest_invoice)
    assert invoice.billing_reason == "subscription_update"
    assert sorted(line.amount for line in invoice.lines.data) == [credit, charge]
    assert (invoice.amount_due, invoice.status) == (credit + charge, "paid")
    for line in invoice.lines.data:
        details = line.parent.subscription_item_details
        assert line.parent.type == "subscription_item_details" and details.proration is True
        assert details.invoice_item.startswith("ii_") and line.period.start == change_at
    assert {i.price.id for i in updated["items"].data} == {pro.base.id, pro.overage.id}
    assert {i.id for i in updated["items"].data} == {i.id for i in items.values()}
    assert missing_keys(fixture("line_item"), invoice.lines.data[0].to_dict()) == []
    item_obj = client.v1.invoice_items.retrieve(
        invoice.lines.data[0].parent.subscription_item_details.invoice_item)
    assert item_obj.proration is True and item_obj.invoice == invoice.id
    assert missing_keys(fixture("invoiceitem"), item_obj.to_dict()) == []


def test_usage_sent_in_the_draft_hour_is_on_the_renewal_invoice(
        client: stripe.StripeClient) -> None:
    plan = make_plan(client, make_meter(client), "pro")
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, plan)
    advance(client, clock, START + 20 * DAY)
    report_usage(client, customer, 100_000)
    advance(client, clock, RENEWAL + 10 * 60)
    draft = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert draft.status == "draft" and draft.amount_due == 9900
    assert draft.automatically_finalizes_at == RENEWAL + HOUR
    report_usage(client, customer, 25_000, timestamp=RENEWAL - 60)  # late, for January
    advance(client, clock, RENEWAL + 2 * HOUR)
    final = client.v1.invoices.retrieve(draft.id)
    assert (final.status, final.amount_paid) == ("paid", 11900)


# --- manual invoices -------------------------------------------------------------------------


def _customer(client: stripe.StripeClient, card: str | None = "pm_card_visa") -> Any:
    params: dict[str, Any] = {"email": "a@example.com"}
    if card:
        params.update(payment_method=card, invoice_settings={"default_payment_method": card})
    return client.v1.customers.create(params=params)


def test_manual_invoice_draft_finalize_pay(client: stripe.StripeClient, sandbox) -> None:
    customer = _customer(client)
    item = client.v1.invoice_items.create(params={
        "customer": customer.id, "amount": 2000, "currency": "usd", "description": "Setup"})
    assert item.invoice is None and item.proration is False
    excluded = client.v1.invoices.create(params={"customer": customer.id})
    assert excluded.lines.data == [] and excluded.auto_advance is False
    client.v1.invoices.delete(excluded.id)

    invoice = client.v1.invoices.create(params={
        "customer": customer.id, "pending_invoice_items_behavior": "include"})
    assert (invoice.status, invoice.amount_due, invoice.billing_reason) == ("draft", 2000,
                                                                            "manual")
    assert invoice.number is None and invoice.parent is None
    assert client.v1.invoice_items.retrieve(item.id).invoice == invoice.id
    final = client.v1.invoices.finalize_invoice(invoice.id)
    assert final.status == "open" and re.fullmatch(r"[0-9A-F]{8}-0001", final.number)
    assert final.hosted_invoice_url.startswith(sandbox.config.public_url)
    assert final.invoice_pdf == final.hosted_invoice_url + "/pdf"
    assert final.attempt_count == 0  # auto_advance is off: nothing is charged by itself
    paid = client.v1.invoices.pay(invoice.id)
    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 2000, 0)
    assert paid.status_transitions.paid_at is not None
    types = [e["type"] for e in events(sandbox) if e["type"].startswith("invoice")]
    assert types == ["invoiceitem.created", "invoice.created", "invoice.deleted",
                     "invoice.created", "invoice.finalized", "invoice.paid",
                     "invoice.payment_succeeded"]
    with pytest.raises(stripe.InvalidRequestError, match="already paid"):
        client.v1.invoices.pay(invoice.id)


def test_paying_with_a_card_that_fails_is_a_402_and_a_failed_attempt(
        client: stripe.StripeClient, sandbox) -> None:
    customer = _customer(client, "pm_card_chargeCustomerFail")
    pm_id = customer.invoice_settings.default_payment_method
    client.v1.invoice_items.create(params={"customer": customer.id, "amount": 2000,
                                           "currency": "usd"})
    invoice = client.v1.invoices.create(params={
        "customer": customer.id, "pending_invoice_items_behavior": "include"})
    with pytest.raises(stripe.CardError) as info:
        client.v1.invoices.pay(invoice.id, params={"payment_method": pm_id})
    assert info.value.http_status == 402 and info.value.code == "card_declined"
    after = client.v1.invoices.retrieve(invoice.id)
    assert (after.status, after.attempted, after.attempt_count) == ("open", True, 1)
    assert after.next_payment_attempt is None  # a manual invoice without auto_advance
    assert len(events(sandbox, "invoice.payment_failed")) == 1


def test_a_zero_invoice_is_paid_on_finalization_without_a_charge(
        client: stripe.StripeClient, sandbox) -> None:
    customer = _customer(client, card=None)
    invoice = client.v1.invoices.create(params={"customer": customer.id})
    final = client.v1.invoices.finalize_invoice(invoice.id)
    assert (final.status, final.amount_due, final.attempted) == ("paid", 0, False)
    assert len(events(sandbox, "invoice.paid")) == 1


def test_auto_advance_draft_finalizes_after_an_hour_and_charges(
        client: stripe.StripeClient) -> None:
    clock, customer = clock_and_customer(client)
    client.v1.invoice_items.create(params={"customer": customer.id, "amount": 500,
                                           "currency": "usd"})
    invoice = client.v1.invoices.create(params={
        "customer": customer.id, "pending_invoice_items_behavior": "include",
        "auto_advance": True})
    assert invoice.automatically_finalizes_at == START + HOUR
    advance(client, clock, START + HOUR - 1)
    assert client.v1.invoices.retrieve(invoice.id).status == "draft"
    advance(client, clock, START + HOUR)
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"


def test_void_uncollectible_update_and_delete_rules(client: stripe.StripeClient,
                                                    sandbox) -> None:
    customer = _customer(client, card=None)

    def open_invoice() -> Any:
        client.v1.invoice_items.create(params={"customer": customer.id, "amount": 700,
                                               "currency": "usd"})
        inv = client.v1.invoices.create(params={
            "customer": customer.id, "pending_invoice_items_behavior": "include"})
        return client.v1.invoices.finalize_invoice(inv.id)

    first = open_invoice()
    with pytest.raises(stripe.InvalidRequestError, match="only delete draft"):
        client.v1.invoices.delete(first.id)
    with pytest.raises(stripe.InvalidRequestError, match="can't be updated"):
        client.v1.invoices.update(first.id, params={"days_until_due": 3})
    updated = client.v1.invoices.update(first.id, params={"metadata": {"k": "v"}})
    assert updated.metadata.to_dict() == {"k": "v"}
    assert events(sandbox, "invoice.updated")[-1]["data"]["previous_attributes"] == {
        "metadata": {}}
    voided = client.v1.invoices.void_invoice(first.id)
    assert (voided.status, voided.amount_remaining) == ("void", 0)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(first.id)
    second = open_invoice()
    lost = client.v1.invoices.mark_uncollectible(second.id)
    assert lost.status == "uncollectible" and lost.status_transitions.marked_uncollectible_at
    assert [e["type"] for e in events(sandbox)
            if e["type"] in ("invoice.voided", "invoice.marked_uncollectible")] == [
        "invoice.voided", "invoice.marked_uncollectible"]
    statuses = {inv.status for inv in client.v1.invoices.list(
        params={"customer": customer.id}).data}
    assert statuses == {"void", "uncollectible"}
    assert [i.id for i in client.v1.invoices.list(params={"status": "void"}).data] == [first.id]


def test_lines_endpoint_pages_in_invoice_order(client: stripe.StripeClient) -> None:
    customer = _customer(client)
    invoice = client.v1.invoices.create(params={"customer": customer.id})
    for amount in (100, 200, 300):
        client.v1.invoice_items.create(params={"customer": customer.id, "amount": amount,
                                               "currency": "usd", "invoice": invoice.id})
    assert client.v1.invoices.retrieve(invoice.id).amount_due == 600
    page = client.v1.invoices.line_items.list(invoice.id, params={"limit": 2})
    assert [line.amount for line in page.data] == [100, 200] and page.has_more
    rest = client.v1.invoices.line_items.list(
        invoice.id, params={"limit": 2, "starting_after": page.data[-1].id})
    assert [line.amount for line in rest.data] == [300] and not rest.has_more


# --- previews --------------------------------------------------------------------------------


def test_preview_of_the_next_renewal_matches_the_invoice_it_becomes(
        client: stripe.StripeClient) -> None:
    plan = make_plan(client, make_meter(client), "pro")
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, plan)
    advance(client, clock, START + 5 * DAY)
    report_usage(client, customer, 130_000)
    preview = client.v1.invoices.create_preview(params={"subscription": sub.id})
    assert preview.id.startswith("upcoming_") and preview.amount_due == 9900 + 2400
    assert all(line.id.startswith("il_tmp_") for line in preview.lines.data)
    advance(client, clock, RENEWAL + 2 * HOUR)
    actual = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert actual.amount_paid == preview.amount_due
    assert sorted(line.amount for line in actual.lines.data) == sorted(
        line.amount for line in preview.lines.data)


def test_preview_of_a_price_change_shows_the_prorations_the_update_makes(
        client: stripe.StripeClient) -> None:
    meter = make_meter(client)
    starter, pro = make_plan(client, meter, "starter"), make_plan(client, meter, "pro")
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, starter)
    advance(client, clock, START + 3 * DAY)
    base_item = next(i for i in sub["items"].data if i.price.id == starter.base.id)
    change = {"items": [{"id": base_item.id, "price": pro.base.id}],
              "proration_date": START + 2 * DAY}
    preview = client.v1.invoices.create_preview(params={
        "subscription": sub.id,
        "subscription_details": {**change, "proration_behavior": "create_prorations"}})
    prorations = sorted(line.amount for line in preview.lines.data
                        if line.parent.subscription_item_details.proration)
    client.v1.subscriptions.update(sub.id, params=change)
    pending = client.v1.invoice_items.list(params={"customer": customer.id, "pending": True})
    assert sorted(item.amount for item in pending.data) == prorations
    assert len(prorations) == 2 and prorations[0] < 0 < prorations[1]
    # the preview's next-period line already uses the new price
    assert any(line.amount == 9900 for line in preview.lines.data)


def test_preview_with_nothing_to_invoice_is_invoice_upcoming_none(
        client: stripe.StripeClient) -> None:
    customer = _customer(client)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.invoices.create_preview(params={"customer": customer.id})
    assert info.value.http_status == 404 and info.value.code == "invoice_upcoming_none"


# --- hosted page and PDF ---------------------------------------------------------------------


def test_hosted_page_and_pdf_are_served(client: stripe.StripeClient, sandbox) -> None:
    customer = _customer(client)
    client.v1.invoice_items.create(params={"customer": customer.id, "amount": 2000,
                                           "currency": "usd", "description": "Setup (once)"})
    invoice = client.v1.invoices.create(params={
        "customer": customer.id, "pending_invoice_items_behavior": "include"})
    final = client.v1.invoices.finalize_invoice(invoice.id)

    page = sandbox.page("GET", final.hosted_invoice_url, {}, b"")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    text = page.body.decode()
    assert final.number in text and "$20.00" in text and "Setup (once)" in text

    pdf = sandbox.page("GET", final.invoice_pdf, {}, b"")
    assert pdf.status == 200 and pdf.headers["Content-Type"] == "application/pdf"
    body = pdf.body
    assert body.startswith(b"%PDF-1.4") and body.rstrip().endswith(b"%%EOF")
    xref_at = int(re.search(rb"startxref\n(\d+)", body).group(1))
    assert body[xref_at:xref_at + 4] == b"xref"
    offsets = re.findall(rb"(\d{10}) 00000 n ", body[xref_at:])
    for number, offset in enumerate(offsets, start=1):
        assert body[int(offset):].startswith(b"%d 0 obj" % number)
    assert b"(Setup \\(once\\))" in body and final.number.encode() in body

    wrong = final.hosted_invoice_url.rsplit("/", 1)[0] + "/not-the-secret"
    assert sandbox.page("GET", wrong, {}, b"").status == 404
