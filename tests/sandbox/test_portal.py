"""Billing portal sessions and the page their `url` serves."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
import stripe

from stripe_sandbox import Sandbox
from stripe_sandbox.server import SandboxServer

from .stripe_reference import fixtures

FIXTURES = fixtures()


def _page(sandbox: Sandbox, url: str) -> tuple[int, str]:
    response = sandbox.page("GET", url, {}, b"")
    return response.status, response.body.decode()


def _subscribed_customer(client: stripe.StripeClient) -> tuple[Any, Any]:
    customer = client.v1.customers.create(params={"name": "Ada Portal"})
    card = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": card.id}}
    )
    product = client.v1.products.create(params={"name": "Pro plan"})
    price = client.v1.prices.create(params={
        "product": product.id, "unit_amount": 4900, "currency": "usd",
        "recurring": {"interval": "month"},
    })
    subscription = client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": price.id}],
    })
    return customer, subscription


def test_session_for_a_customer_without_billing(client: stripe.StripeClient,
                                                sandbox: Sandbox) -> None:
    customer = client.v1.customers.create(params={"name": "Grace Empty"})
    session = client.v1.billing_portal.sessions.create(
        params={"customer": customer.id, "return_url": "https://app.example.com/account"}
    )
    assert isinstance(session, stripe.billing_portal.Session)
    assert set(FIXTURES["billing_portal.session"]) <= set(session.to_dict())
    assert session.id.startswith("bps_") and session.customer == customer.id
    assert session.configuration.startswith("bpc_") and session.flow is None
    assert session.url.startswith(sandbox.config.public_url + "/")
    status, html = _page(sandbox, session.url)
    assert status == 200
    assert "Grace Empty" in html and "No subscriptions." in html and "No invoices." in html
    assert 'href="https://app.example.com/account"' in html


def test_page_shows_subscription_and_links_invoices(client: stripe.StripeClient,
                                                    sandbox: Sandbox) -> None:
    customer, subscription = _subscribed_customer(client)
    session = client.v1.billing_portal.sessions.create(params={"customer": customer.id})
    status, html = _page(sandbox, session.url)
    assert status == 200
    assert subscription.id in html and "Pro plan" in html
    invoices = client.v1.invoices.list(params={"customer": customer.id}).data
    assert invoices
    for invoice in invoices:
        assert invoice.hosted_invoice_url
        assert f'href="{invoice.hosted_invoice_url}"' in html


def test_page_is_served_over_http(client: stripe.StripeClient, sandbox: Sandbox) -> None:
    server = SandboxServer(sandbox).start()
    try:
        customer = client.v1.customers.create(params={"email": "web@example.com"})
        session = client.v1.billing_portal.sessions.create(params={"customer": customer.id})
        assert session.url.startswith(server.url)
        with urllib.request.urlopen(session.url, timeout=5) as answer:
            assert answer.status == 200
            assert answer.headers["Content-Type"].startswith("text/html")
            assert "web@example.com" in answer.read().decode()
    finally:
        server.stop()


def test_unknown_session_page_is_404(sandbox: Sandbox) -> None:
    status, _ = _page(sandbox, "/p/session/test_nope")
    assert status == 404


def test_customer_must_exist(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.billing_portal.sessions.create(params={"customer": "cus_missing"})
    assert info.value.http_status == 404 and info.value.param == "customer"


def test_flow_for_a_subscription_of_the_customer(client: stripe.StripeClient) -> None:
    customer, subscription = _subscribed_customer(client)
    session = client.v1.billing_portal.sessions.create(params={
        "customer": customer.id,
        "flow_data": {"type": "subscription_cancel",
                      "subscription_cancel": {"subscription": subscription.id}},
    })
    assert session.flow.type == "subscription_cancel"
    assert session.flow.subscription_cancel.subscription == subscription.id
    assert session.flow.after_completion.type == "portal_homepage"

    stranger = client.v1.customers.create(params={"name": "Stranger"})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.billing_portal.sessions.create(params={
            "customer": stranger.id,
            "flow_data": {"type": "subscription_update",
                          "subscription_update": {"subscription": subscription.id}},
        })
    assert info.value.param == "flow_data[subscription_update][subscription]"
