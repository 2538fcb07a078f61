"""Payment methods through the official client: test tokens, raw test cards, attach, detach."""

from __future__ import annotations

import time

import pytest
import stripe

from stripe_sandbox import Sandbox
from stripe_sandbox.resources.payment_methods import charge_failure


def _customer(client: stripe.StripeClient) -> stripe.Customer:
    return client.v1.customers.create(params={"email": "pm@example.com"})


def _events(sandbox: Sandbox, event_type: str) -> list[dict]:
    return [e for e in sandbox.store.all("event") if e["type"] == event_type]


def test_attaching_a_test_token_makes_a_new_payment_method(client, sandbox) -> None:
    customer = _customer(client)
    first = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    second = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    assert first.id.startswith("pm_") and first.id != "pm_card_visa"
    assert first.id != second.id
    assert first.customer == customer.id
    assert (first.card.brand, first.card.last4, first.card.funding) == ("visa", "4242", "credit")
    assert first.card.fingerprint == second.card.fingerprint
    attached = _events(sandbox, "payment_method.attached")
    assert [e["data"]["object"]["id"] for e in attached] == [first.id, second.id]


def test_mastercard_token_and_fixture_shape(client) -> None:
    customer = _customer(client)
    pm = client.v1.payment_methods.attach("pm_card_mastercard",
                                          params={"customer": customer.id})
    assert (pm.card.brand, pm.card.last4) == ("mastercard", "4444")
    assert pm.card.exp_year > time.gmtime(pm.created).tm_year
    for key in ("allow_redisplay", "billing_details", "customer_account", "metadata", "livemode"):
        assert key in pm
    for key in ("checks", "country", "display_brand", "networks", "three_d_secure_usage"):
        assert key in pm.card


def test_declined_card_cannot_be_attached(client, sandbox) -> None:
    customer = _customer(client)
    with pytest.raises(stripe.CardError) as info:
        client.v1.payment_methods.attach("pm_card_chargeDeclined",
                                         params={"customer": customer.id})
    assert info.value.http_status == 402
    assert info.value.code == "card_declined"
    assert info.value.error.decline_code == "generic_decline"
    assert info.value.user_message == "Your card was declined."
    assert client.v1.customers.payment_methods.list(customer.id).data == []
    assert _events(sandbox, "payment_method.attached") == []


def test_raw_declined_numbers_fail_at_attach_with_their_decline_codes(client) -> None:
    customer = _customer(client)
    for number, code, decline_code in [
        ("4000000000000002", "card_declined", "generic_decline"),
        ("4000000000009995", "card_declined", "insufficient_funds"),
        ("4000000000009979", "card_declined", "stolen_card"),
        ("4000000000000069", "expired_card", "expired_card"),
    ]:
        pm = client.v1.payment_methods.create(params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2099, "cvc": "123"},
        })
        assert pm.card.last4 == number[-4:] and pm.customer is None
        with pytest.raises(stripe.CardError) as info:
            client.v1.payment_methods.attach(pm.id, params={"customer": customer.id})
        assert (info.value.code, info.value.error.decline_code) == (code, decline_code)


def test_charge_customer_fail_attaches_then_every_charge_fails(client, sandbox) -> None:
    customer = _customer(client)
    failing = client.v1.payment_methods.attach("pm_card_chargeCustomerFail",
                                               params={"customer": customer.id})
    assert failing.customer == customer.id and failing.card.last4 == "0341"
    good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    store = sandbox.store
    assert charge_failure(store.get("payment_method", failing.id)) == (
        "card_declined", "generic_decline", "Your card was declined.")
    assert charge_failure(store.get("payment_method", good.id)) is None
    code, _, message = charge_failure(None)
    assert code and "no attached payment source" in message


def test_create_from_raw_numbers_and_tok_tokens(client) -> None:
    amex = client.v1.payment_methods.create(params={
        "type": "card", "card": {"number": "378282246310005", "exp_month": 1, "exp_year": 2090},
        "billing_details": {"name": "Ada", "address": {"country": "GB"}},
    })
    assert (amex.card.brand, amex.card.display_brand, amex.card.last4) == (
        "amex", "american_express", "0005")
    assert amex.billing_details.name == "Ada" and amex.billing_details.address.country == "GB"
    token_pm = client.v1.payment_methods.create(params={"type": "card",
                                                        "card": {"token": "tok_visa"}})
    assert token_pm.card.last4 == "4242"
    with pytest.raises(stripe.CardError) as info:
        client.v1.payment_methods.create(params={
            "type": "card", "card": {"number": "4242424242424241", "exp_month": 1,
                                     "exp_year": 2090}})
    assert info.value.code == "incorrect_number"
    with pytest.raises(stripe.CardError) as info:
        client.v1.payment_methods.create(params={
            "type": "card", "card": {"number": "4242424242424242", "exp_month": 13,
                                     "exp_year": 2090}})
    assert info.value.code == "invalid_expiry_month"


def test_list_and_detach_clears_the_default_payment_method(client, sandbox) -> None:
    customer = _customer(client)
    a = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    b = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": customer.id})
    other = _customer(client)
    client.v1.payment_methods.attach("pm_card_visa", params={"customer": other.id})
    client.v1.customers.update(customer.id, params={
        "invoice_settings": {"default_payment_method": a.id}})

    listed = client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"})
    assert [pm.id for pm in listed.data] == [b.id, a.id]
    by_customer = client.v1.customers.payment_methods.list(customer.id)
    assert [pm.id for pm in by_customer.data] == [b.id, a.id]
    assert client.v1.customers.payment_methods.retrieve(customer.id, a.id).id == a.id

    detached = client.v1.payment_methods.detach(a.id)
    assert detached.customer is None
    assert client.v1.customers.retrieve(customer.id).invoice_settings.default_payment_method is None
    assert [pm.id for pm in client.v1.customers.payment_methods.list(customer.id).data] == [b.id]
    event = _events(sandbox, "payment_method.detached")[-1]
    assert event["data"]["previous_attributes"] == {"customer": customer.id}
    updated = _events(sandbox, "customer.updated")[-1]
    # The whole nested object, as Stripe's types (`Partial<Customer>`) have it.
    assert updated["data"]["previous_attributes"] == {"invoice_settings": {
        "custom_fields": None, "default_payment_method": a.id, "footer": None,
        "rendering_options": None}}

    with pytest.raises(stripe.InvalidRequestError, match="not attached to a customer"):
        client.v1.payment_methods.detach(a.id)
    with pytest.raises(stripe.InvalidRequestError, match="may not be used again"):
        client.v1.payment_methods.attach(a.id, params={"customer": customer.id})


def test_update_needs_an_attached_payment_method(client, sandbox) -> None:
    customer = _customer(client)
    pm = client.v1.payment_methods.create(params={"type": "card", "card": {"token": "tok_visa"}})
    with pytest.raises(stripe.InvalidRequestError, match="save this PaymentMethod"):
        client.v1.payment_methods.update(pm.id, params={"metadata": {"a": "1"}})
    client.v1.payment_methods.attach(pm.id, params={"customer": customer.id})
    updated = client.v1.payment_methods.update(pm.id, params={
        "metadata": {"a": "1"}, "billing_details": {"email": "x@y.z"}})
    assert updated.metadata.to_dict() == {"a": "1"}
    assert updated.billing_details.email == "x@y.z"
    event = _events(sandbox, "payment_method.updated")[-1]
    assert event["data"]["previous_attributes"]["metadata"] == {}


def test_customer_created_with_a_test_token_gets_it_attached(client) -> None:
    customer = client.v1.customers.create(params={"payment_method": "pm_card_visa"})
    methods = client.v1.customers.payment_methods.list(customer.id).data
    assert len(methods) == 1 and methods[0].id.startswith("pm_")


def test_attach_to_another_customer_and_unknown_ids(client) -> None:
    first, second = _customer(client), _customer(client)
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": first.id})
    with pytest.raises(stripe.InvalidRequestError, match="already been attached"):
        client.v1.payment_methods.attach(pm.id, params={"customer": second.id})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.payment_methods.retrieve("pm_missing")
    assert info.value.http_status == 404 and info.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError, match="No such customer"):
        client.v1.payment_methods.attach(pm.id, params={"customer": "cus_missing"})


def test_check_attachable_raises_without_changing_anything(client, sandbox) -> None:
    from stripe_sandbox.engine import Call
    from stripe_sandbox.errors import CardError
    from stripe_sandbox.resources.payment_methods import check_attachable

    customer = sandbox.store.get("customer", _customer(client).id)
    call = Call(sandbox, "POST", "/v1/customers", {}, "req_test")
    before = len(sandbox.store.all("payment_method"))
    with pytest.raises(CardError) as info:
        check_attachable(call, "pm_card_chargeDeclined", customer, "payment_method")
    assert info.value.decline_code == "generic_decline"
    check_attachable(call, "pm_card_visa", customer, "payment_method")
    assert len(sandbox.store.all("payment_method")) == before
    assert _events(sandbox, "payment_method.attached") == []
