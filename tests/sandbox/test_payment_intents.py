"""PaymentIntents behind invoices: a failed charge leaves its decline code where Stripe puts it
(`last_payment_error` of the invoice's payment intent), a later success clears it, a void
cancels the intent."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from .test_invoices import fixture, missing_keys

EXPAND = ["payments.data.payment.payment_intent"]


def _invoice_for(client: stripe.StripeClient, card: str) -> tuple[str, str]:
    customer = client.v1.customers.create(params={"email": "pi@example.com"})
    pm = client.v1.payment_methods.attach(card, params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={
        "invoice_settings": {"default_payment_method": pm.id}})
    client.v1.invoice_items.create(params={"customer": customer.id, "amount": 4200,
                                           "currency": "usd"})
    invoice = client.v1.invoices.create(params={"customer": customer.id,
                                                "pending_invoice_items_behavior": "include"})
    return customer.id, invoice.id


def _intent(client: stripe.StripeClient, invoice_id: str) -> Any:
    invoice = client.v1.invoices.retrieve(invoice_id, params={"expand": EXPAND})
    [payment] = invoice.payments.data
    intent = payment.payment.payment_intent
    assert isinstance(intent, stripe.PaymentIntent)
    return intent


def test_a_declined_charge_leaves_its_decline_code_on_the_intent(
        client: stripe.StripeClient) -> None:
    customer_id, invoice_id = _invoice_for(client, "pm_card_chargeCustomerFail")
    client.v1.invoices.finalize_invoice(invoice_id, params={"auto_advance": True})
    intent = _intent(client, invoice_id)
    assert (intent.status, intent.amount, intent.customer) == (
        "requires_payment_method", 4200, customer_id)
    error = intent.last_payment_error
    assert error is not None
    assert (error.type, error.code, error.decline_code) == (
        "card_error", "card_declined", "generic_decline")
    assert error.payment_method is not None and error.payment_method.id == intent.payment_method
    # The same object through its own endpoint, in Stripe's shape.
    direct = client.v1.payment_intents.retrieve(intent.id)
    assert direct.last_payment_error is not None
    assert direct.last_payment_error.decline_code == "generic_decline"
    assert missing_keys(fixture("payment_intent"), direct.to_dict()) == []

    good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer_id})
    paid = client.v1.invoices.pay(invoice_id, params={"payment_method": good.id})
    assert paid.status == "paid"
    intent = _intent(client, invoice_id)
    assert (intent.status, intent.amount_received, intent.last_payment_error) == (
        "succeeded", 4200, None)


def test_voiding_the_invoice_cancels_its_intent(client: stripe.StripeClient) -> None:
    _, invoice_id = _invoice_for(client, "pm_card_chargeCustomerFail")
    client.v1.invoices.finalize_invoice(invoice_id, params={"auto_advance": True})
    client.v1.invoices.void_invoice(invoice_id)
    intent = _intent(client, invoice_id)
    assert (intent.status, intent.cancellation_reason) == ("canceled", "void_invoice")


def test_an_unknown_intent_is_a_404(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.payment_intents.retrieve("pi_nope")
    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"
