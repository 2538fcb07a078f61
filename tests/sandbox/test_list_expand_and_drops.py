"""Listing subscriptions of every status with their customers expanded, as reconciliation
reads them: a deleted customer expands to Stripe's stub, expansion never changes what the
sandbox stores; and the delivery knob that loses events for good (`drop_next`)."""

from __future__ import annotations

import time

import pytest
import stripe

from stripe_sandbox import Sandbox
from stripe_sandbox.delivery import Dispatcher, coerce_delivery_config


def _subscription(client: stripe.StripeClient, email: str) -> tuple[str, str]:
    product = client.v1.products.create(params={"name": "P"})
    price = client.v1.prices.create(params={"product": product.id, "currency": "usd",
                                            "unit_amount": 500,
                                            "recurring": {"interval": "month"}})
    customer = client.v1.customers.create(params={
        "email": email, "payment_method": "pm_card_visa",
        "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    sub = client.v1.subscriptions.create(params={"customer": customer.id,
                                                 "items": [{"price": price.id}]})
    return customer.id, sub.id


def test_a_deleted_customer_expands_to_its_stub(client: stripe.StripeClient) -> None:
    kept, kept_sub = _subscription(client, "kept@example.com")
    gone, gone_sub = _subscription(client, "gone@example.com")
    client.v1.customers.delete(gone)
    page = client.raw_request("get", "/v1/subscriptions", status="all", limit=100,
                              expand=["data.customer"]).data
    by_id = {s["id"]: s for s in page["data"]}
    assert by_id[gone_sub]["status"] == "canceled"  # deleting a customer cancels its subs
    assert by_id[gone_sub]["customer"] == {"id": gone, "object": "customer", "deleted": True}
    customer = by_id[kept_sub]["customer"]
    assert customer["id"] == kept and customer["email"] == "kept@example.com"
    assert customer["invoice_settings"]["default_payment_method"].startswith("pm_")
    # Expansion copied what it changed: the stored subscription still names its customer.
    plain = client.raw_request("get", f"/v1/subscriptions/{kept_sub}").data
    assert plain["customer"] == kept
    assert client.v1.subscriptions.list(params={"limit": 100}).data[0].id == kept_sub


def test_drop_next_loses_that_many_events(sandbox: Sandbox,
                                          client: stripe.StripeClient) -> None:
    client.v1.webhook_endpoints.create(params={"url": "http://127.0.0.1:9/hook",
                                               "enabled_events": ["*"]})
    dispatcher: Dispatcher = sandbox.webhooks  # type: ignore[attr-defined]
    dispatcher.configure(drop_next=2, retry_base_seconds=3600)
    try:
        for i in range(3):
            client.v1.customers.create(params={"email": f"c{i}@example.com"})
        events = [e["id"] for e in sandbox.store.all("event") if e["type"] == "customer.created"]
        assert dispatcher.dropped == events[:2]
        assert dispatcher.config.drop_next == 0
        deadline = time.monotonic() + 15  # the third is tried (port 9 refuses: a failure)
        while not dispatcher.attempts_for(events[2]):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert dispatcher.attempts_for(events[0]) == dispatcher.attempts_for(events[1]) == []
    finally:
        dispatcher.close()
    with pytest.raises(ValueError, match="drop_next must not be negative"):
        coerce_delivery_config({"drop_next": "-1"})
