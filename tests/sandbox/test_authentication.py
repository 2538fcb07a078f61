"""3-D Secure test cards: a new subscription's first charge waits in `requires_action`, the
hosted invoice page lets the customer authenticate and pay, and an unpaid wait expires."""

from __future__ import annotations

import re
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
    subscribe,
)

EXPAND = ["payments.data.payment.payment_intent"]


@pytest.fixture
def pro(client: stripe.StripeClient) -> Any:
    return make_plan(client, make_meter(client), "pro")


def _intent(client: stripe.StripeClient, invoice_id: str) -> Any:
    invoice = client.v1.invoices.retrieve(invoice_id, params={"expand": EXPAND})
    [payment] = invoice.payments.data
    return payment.payment.payment_intent


def _press_pay(sandbox, page_url: str) -> Any:
    """What a browser does: load the page, submit its form."""
    page = sandbox.page("GET", page_url, {}, b"")
    assert page.status == 200
    action = re.search(r'<form method="post" action="([^"]+)"', page.body.decode())
    assert action is not None, "the page offers no payment form"
    return sandbox.page("POST", action.group(1).replace("&amp;", "&"),
                        {"Content-Type": "application/x-www-form-urlencoded"}, b"pay=1")


@pytest.mark.parametrize("card", ["pm_card_authenticationRequired",
                                  "pm_card_threeDSecure2Required"])
def test_first_charge_requires_action_then_the_page_pays_it(
        client: stripe.StripeClient, sandbox, pro, card: str) -> None:
    _, customer = clock_and_customer(client, card)
    sub = subscribe(client, customer, pro, payment_behavior="allow_incomplete")
    assert sub.status == "incomplete"
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (invoice.status, invoice.attempted, invoice.amount_paid) == ("open", True, 0)
    intent = _intent(client, invoice.id)
    assert intent.status == "requires_action" and intent.last_payment_error is None
    assert intent.next_action is not None and intent.next_action.type == "use_stripe_sdk"
    assert [e["type"] for e in events(sandbox) if e["type"].startswith("invoice.payment")] == [
        "invoice.payment_action_required"]
    page = sandbox.page("GET", invoice.hosted_invoice_url, {}, b"").body.decode()
    assert "Authenticate and pay" in page

    answer = _press_pay(sandbox, invoice.hosted_invoice_url)
    assert answer.status == 303 and answer.headers["Location"] == invoice.hosted_invoice_url
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    paid = client.v1.invoices.retrieve(invoice.id)
    assert (paid.status, paid.amount_paid) == ("paid", invoice.amount_due)
    assert _intent(client, invoice.id).status == "succeeded"
    types = [e["type"] for e in events(sandbox)]
    tail = types[types.index("invoice.payment_action_required"):]
    assert [t for t in tail if t.startswith(("invoice.pa", "customer.subscription"))] == [
        "invoice.payment_action_required", "customer.subscription.created", "invoice.paid",
        "invoice.payment_succeeded", "customer.subscription.updated"]
    assert events(sandbox, "customer.subscription.updated")[-1]["data"]["previous_attributes"][
        "status"] == "incomplete"
    # Paid: the page shows no form any more, and pressing again changes nothing.
    assert "<form" not in sandbox.page("GET", invoice.hosted_invoice_url, {}, b"").body.decode()
    assert sandbox.page("POST", invoice.hosted_invoice_url + "/pay", {}, b"").status == 303
    assert len(events(sandbox, "invoice.paid")) == 1


def test_paying_through_the_api_needs_the_customer(client: stripe.StripeClient, pro) -> None:
    _, customer = clock_and_customer(client, "pm_card_authenticationRequired")
    sub = subscribe(client, customer, pro)
    with pytest.raises(stripe.CardError) as caught:
        client.v1.invoices.pay(sub.latest_invoice)
    assert caught.value.code == "invoice_payment_intent_requires_action"
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete"


def test_left_alone_it_expires_after_23_hours(client: stripe.StripeClient, sandbox,
                                              pro) -> None:
    clock, customer = clock_and_customer(client, "pm_card_authenticationRequired")
    sub = subscribe(client, customer, pro)
    advance(client, clock, START + DAY)
    expired = client.v1.subscriptions.retrieve(sub.id)
    assert (expired.status, expired.ended_at) == ("incomplete_expired", START + 23 * HOUR)
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert invoice.status == "void" and _intent(client, invoice.id).status == "canceled"
    assert sandbox.page("GET", invoice.hosted_invoice_url, {}, b"").body.decode().count(
        "<form") == 0


def test_a_renewal_off_session_is_declined_for_authentication(
        client: stripe.StripeClient, sandbox, pro) -> None:
    clock, customer = clock_and_customer(client, "pm_card_authenticationRequired")
    sub = subscribe(client, customer, pro, trial_period_days=7)
    assert sub.status == "trialing"
    advance(client, clock, START + 7 * DAY + 2 * HOUR)  # the trial's invoice finalizes
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert renewed.status == "past_due"
    intent = _intent(client, renewed.latest_invoice)
    assert intent.last_payment_error.decline_code == "authentication_required"
    assert {"invoice.payment_failed", "invoice.payment_action_required"} <= {
        e["type"] for e in events(sandbox)}
    # The customer authenticates on the page: paid, active again.
    page_url = client.v1.invoices.retrieve(renewed.latest_invoice).hosted_invoice_url
    assert _press_pay(sandbox, page_url).status == 303
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


@pytest.mark.parametrize(("save", "saved"), [("on_subscription", True), ("off", False)])
def test_a_card_typed_on_the_page_becomes_the_default_with_on_subscription(
        client: stripe.StripeClient, sandbox, pro, save: str, saved: bool) -> None:
    _, customer = clock_and_customer(client, "pm_card_authenticationRequired")
    sub = subscribe(client, customer, pro, payment_behavior="allow_incomplete",
                    payment_settings={"save_default_payment_method": save})
    assert (sub.status, sub.payment_settings.save_default_payment_method) == ("incomplete", save)
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    page = sandbox.page("GET", invoice.hosted_invoice_url, {}, b"")
    action = re.search(r'<form method="post" action="([^"]+)"', page.body.decode())
    assert action is not None
    answer = sandbox.page("POST", action.group(1).replace("&amp;", "&"),
                          {"Content-Type": "application/x-www-form-urlencoded"},
                          b"payment_method=tok_visa")
    assert answer.status == 303
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.status == "active"
    card = _intent(client, invoice.id).payment_method
    assert card != customer.invoice_settings.default_payment_method
    assert (after.default_payment_method == card) is saved
    assert (client.v1.payment_methods.retrieve(card).customer == customer.id) is saved
