"""Invoices sent by email (`collection_method=send_invoice`): due dates, the hosted page where
the customer pays, `invoice.sent`, and `invoice.overdue` on the test clock."""

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
    record_clock_times,
    subscribe,
)
from .test_fidelity import shape_problems, stripe_examples, typed_problems


@pytest.fixture
def pro(client: stripe.StripeClient) -> Any:
    return make_plan(client, make_meter(client), "pro")


def _emailed(client: stripe.StripeClient, pro: Any, days: int = 30) -> tuple[Any, Any, Any]:
    clock, customer = clock_and_customer(client, card=None)
    sub = subscribe(client, customer, pro, collection_method="send_invoice",
                    days_until_due=days)
    return clock, customer, sub


def test_first_invoice_is_finalized_an_hour_later_with_a_due_date_and_never_charged(
        client: stripe.StripeClient, sandbox, pro) -> None:
    clock, _, sub = _emailed(client, pro)
    assert (sub.status, sub.collection_method, sub.days_until_due) == (
        "active", "send_invoice", 30)
    draft = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (draft.status, draft.due_date, draft.hosted_invoice_url) == (
        "draft", START + 30 * DAY, None)
    advance(client, clock, START + 2 * HOUR)
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (invoice.status, invoice.collection_method, invoice.attempted,
            invoice.attempt_count, invoice.next_payment_attempt) == (
        "open", "send_invoice", False, 0, None)
    assert invoice.due_date == START + 30 * DAY and invoice.amount_due == 9900
    assert invoice.hosted_invoice_url and sandbox.page(
        "GET", invoice.hosted_invoice_url, {}, b"").status == 200
    assert [e["type"] for e in events(sandbox) if e["type"].startswith("invoice.")] == [
        "invoice.created", "invoice.finalized"]
    assert shape_problems(stripe_examples()["invoice"], invoice.to_dict()) == []
    assert typed_problems("invoice", invoice) == []


def test_overdue_in_time_order_then_past_due_and_paid_on_the_page_restores(
        client: stripe.StripeClient, sandbox, pro) -> None:
    clock, _, sub = _emailed(client, pro, days=10)
    seen = record_clock_times(sandbox, clock.id)
    advance(client, clock, START + 40 * DAY)  # due Jan 11; renewal Feb 1 (due Feb 11)
    kinds = [(kind, at) for kind, at, obj in seen
             if kind in ("invoice.finalized", "invoice.overdue", "invoice.created")]
    assert kinds == [
        ("invoice.finalized", START + HOUR),
        ("invoice.overdue", START + 10 * DAY),
        ("invoice.created", START + 31 * DAY),
        ("invoice.finalized", START + 31 * DAY + HOUR),
    ]
    statuses = [(at, obj["status"]) for kind, at, obj in seen
                if kind == "customer.subscription.updated" and obj["status"] == "past_due"]
    assert statuses[0] == (START + 10 * DAY, "past_due")
    overdue = events(sandbox, "invoice.overdue")
    assert len(overdue) == 1 and overdue[0]["data"]["object"]["id"] == sub.latest_invoice
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    first = client.v1.invoices.retrieve(sub.latest_invoice)
    assert first.status == "open"
    assert sandbox.page("POST", first.hosted_invoice_url + "/pay", {},
                        b"payment_method=pm_card_chargeDeclined").status == 402
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    # no card on file and none given: nothing to charge
    assert sandbox.page("POST", first.hosted_invoice_url + "/pay", {}, b"").status == 402
    assert sandbox.page("POST", first.hosted_invoice_url + "/pay", {},
                        b"payment_method=pm_card_visa").status == 303
    assert client.v1.invoices.retrieve(first.id).status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"  # renewal not yet due
    advance(client, clock, START + 42 * DAY)  # Feb 11: the renewal invoice falls overdue
    assert len(events(sandbox, "invoice.overdue")) == 2
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"


def test_send_emits_invoice_sent_and_refuses_what_stripe_refuses(
        client: stripe.StripeClient, sandbox, pro) -> None:
    clock, customer, sub = _emailed(client, pro)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.send_invoice(sub.latest_invoice)  # still a draft
    advance(client, clock, START + 2 * HOUR)
    sent = client.v1.invoices.send_invoice(sub.latest_invoice)
    assert sent.status == "open"
    assert [e["data"]["object"]["id"] for e in events(sandbox, "invoice.sent")] == [sent.id]
    charged = subscribe(client, *clock_and_customer(client)[1:], pro)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.send_invoice(charged.latest_invoice)


@pytest.mark.parametrize(("extra", "param"), [
    ({"collection_method": "send_invoice"}, "days_until_due"),
    ({"days_until_due": 30}, "days_until_due"),
    ({"collection_method": "send_invoice", "days_until_due": -1}, "days_until_due"),
])
def test_days_until_due_rules(client: stripe.StripeClient, pro, extra: dict[str, Any],
                              param: str) -> None:
    _, customer = clock_and_customer(client, card=None)
    with pytest.raises(stripe.InvalidRequestError) as info:
        subscribe(client, customer, pro, **extra)
    assert info.value.http_status == 400 and info.value.param == param


def test_paying_before_the_due_date_sends_no_overdue(client: stripe.StripeClient, sandbox,
                                                     pro) -> None:
    clock, _, sub = _emailed(client, pro)
    advance(client, clock, START + 2 * HOUR)
    client.v1.invoices.pay(sub.latest_invoice, params={"paid_out_of_band": True})
    advance(client, clock, START + 30 * DAY + HOUR)
    assert events(sandbox, "invoice.overdue") == []
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_list_filters_open_emailed_invoices_past_their_due_date(
        client: stripe.StripeClient, pro) -> None:
    clock, _, sub = _emailed(client, pro, days=10)
    card_clock, card_customer = clock_and_customer(client)
    charged = subscribe(client, card_customer, pro)  # charged at once: no due date
    advance(client, clock, START + 12 * DAY)
    advance(client, card_clock, START + 2 * HOUR)
    assert client.v1.invoices.retrieve(charged.latest_invoice).due_date is None

    def listed(**params: Any) -> list[str]:
        return [i.id for i in client.v1.invoices.list(params=params).data]  # type: ignore[arg-type]

    emailed = sub.latest_invoice
    overdue = {"status": "open", "collection_method": "send_invoice"}
    assert listed(**overdue, due_date={"lt": START + 12 * DAY}) == [emailed]
    assert listed(**overdue, due_date={"lt": START + 10 * DAY}) == []  # due at, not before
    assert listed(**overdue, due_date={"lte": START + 10 * DAY}) == [emailed]
    assert listed(**overdue, due_date=START + 10 * DAY) == [emailed]
    # An invoice charged automatically has no due date: no due_date filter matches it.
    assert listed(due_date={"gt": 0}) == [emailed]
    assert charged.latest_invoice in listed(collection_method="charge_automatically")
    assert listed(status="paid", collection_method="send_invoice") == []
    refused = [
        ({"due_date": {"ne": 1}}, "due_date[ne]"),
        ({"status": "overdue"}, "status"),
        ({"collection_method": "by_post"}, "collection_method"),
        ({"customer_account": "acct_1"}, "customer_account"),
    ]
    for params, param in refused:
        with pytest.raises(stripe.InvalidRequestError) as error:
            client.v1.invoices.list(params=params)  # type: ignore[arg-type]
        assert error.value.http_status == 400 and param in str(error.value), params
