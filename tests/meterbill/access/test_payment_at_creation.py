"""The first invoice is charged when a subscription is created, through the API, on a test
clock: a good card starts it active and paid; a declined card is a 402 that leaves nothing
behind; a 3-D Secure card waits, incomplete, for the customer on the hosted invoice page, and
expires after 23 hours when they never come."""

from __future__ import annotations

import re
from typing import Any

import stripe
from fastapi.testclient import TestClient

from meterbill.adapters.db.notifications import NoticeRepository
from meterbill.adapters.db.repositories import SubscriptionRepository, TenantRepository
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents
from stripe_sandbox import Sandbox

from .conftest import DAY, EMAIL, START, TENANT, Month, notices
from .test_access_states import agreed


def _customer(container: Container, client: stripe.StripeClient) -> tuple[str, str]:
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": START})
    customer = client.v1.customers.create(params={"email": EMAIL, "test_clock": clock.id,
                                                  "metadata": {"tenant_id": TENANT}})
    with container.db.session() as session:
        TenantRepository(session).claim_customer(TENANT, EMAIL, "Acme Inc.", customer.id)
    return clock.id, customer.id


def _create(api: TestClient, auth: dict[str, str], customer: str, card: str) -> Any:
    return api.post("/subscriptions", headers=auth, json={
        "customer_id": customer, "plan_type": "starter", "tenant_id": TENANT,
        "trial_days": 0, "payment_method_id": card})


def _kinds(container: Container, kind: str) -> list[Any]:
    with container.db.session() as session:
        return [n for n in NoticeRepository(session).all(kind) if n.tenant_id == TENANT]


def test_a_good_card_is_charged_at_creation_and_stays_active(
        container: Container, api: TestClient, auth: dict[str, str],
        hooks: WebhookComponents, stripe_client: stripe.StripeClient,
        sandbox: Sandbox) -> None:
    clock, customer = _customer(container, stripe_client)
    answer = _create(api, auth, customer, "pm_card_visa")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["status"], body["next_action"]) == ("active", None)
    invoice = stripe_client.v1.invoices.retrieve(body["latest_invoice"])
    assert (invoice.status, invoice.amount_paid) == ("paid", invoice.amount_due)
    assert invoice.amount_due > 0
    month = Month(container, hooks, stripe_client, sandbox, clock, customer, body["id"])
    month.deliver_new()
    assert agreed(api, auth)["access"] == "full"
    month.advance(START + 2 * DAY)  # two days later: still active, still full
    assert stripe_client.v1.subscriptions.retrieve(body["id"]).status == "active"
    assert (agreed(api, auth)["access"], agreed(api, auth)["status"]) == ("full", "active")


def test_a_declined_card_is_402_and_leaves_nothing_behind(
        container: Container, api: TestClient, auth: dict[str, str],
        stripe_client: stripe.StripeClient) -> None:
    _, customer = _customer(container, stripe_client)
    answer = _create(api, auth, customer, "pm_card_chargeCustomerFail")
    assert answer.status_code == 402, answer.text
    error = answer.json()["error"]
    assert error["code"] == "card_declined" and "generic_decline" in error["message"]
    assert error["stripe_code"] == "generic_decline"
    subs = stripe_client.v1.subscriptions.list(params={"customer": customer, "status": "all"})
    assert [s.status for s in subs.data] == ["canceled"]  # nothing live left in Stripe
    with container.db.session() as session:
        assert list(SubscriptionRepository(session).for_tenant(TENANT)) == []
        row = TenantRepository(session).get(TENANT)
        assert row is not None and row.stripe_subscription_id is None
    # The same request again is answered the same way, and a good card then works.
    again = _create(api, auth, customer, "pm_card_chargeCustomerFail")
    assert again.status_code == 402, again.text
    assert _create(api, auth, customer, "pm_card_visa").json()["status"] == "active"


def test_authentication_waits_on_the_hosted_page_then_pays(
        container: Container, api: TestClient, auth: dict[str, str],
        hooks: WebhookComponents, stripe_client: stripe.StripeClient,
        sandbox: Sandbox) -> None:
    clock, customer = _customer(container, stripe_client)
    answer = _create(api, auth, customer, "pm_card_authenticationRequired")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["status"] == "incomplete"
    url = body["next_action"]["hosted_invoice_url"]
    assert body["next_action"]["type"] == "authenticate_payment" and url
    [reminder] = _kinds(container, "payment_authentication_required")
    assert reminder.kind == "payment_authentication_required"
    month = Month(container, hooks, stripe_client, sandbox, clock, customer, body["id"])
    month.deliver_new()
    waiting = agreed(api, auth)
    assert (waiting["access"], waiting["status"]) == ("reduced", "incomplete"), waiting
    listed = api.get("/subscriptions", params={"status": "incomplete"}, headers=auth).json()
    assert [s["id"] for s in listed["data"]] == [body["id"]]

    # The customer opens the emailed page and presses its button, as a browser would.
    page = sandbox.page("GET", url, {}, b"").body.decode()
    action = re.search(r'<form method="post" action="([^"]+)"', page)
    assert action is not None and "Authenticate and pay" in page
    posted = sandbox.page("POST", action.group(1),
                          {"Content-Type": "application/x-www-form-urlencoded"}, b"pay=1")
    assert posted.status == 303
    month.deliver_new()
    assert stripe_client.v1.subscriptions.retrieve(body["id"]).status == "active"
    assert (agreed(api, auth)["access"], agreed(api, auth)["status"]) == ("full", "active")
    assert api.get("/subscriptions", params={"status": "incomplete"},
                   headers=auth).json()["data"] == []


def test_authentication_left_alone_expires_and_the_tenant_is_told(
        container: Container, api: TestClient, auth: dict[str, str],
        hooks: WebhookComponents, stripe_client: stripe.StripeClient,
        sandbox: Sandbox) -> None:
    clock, customer = _customer(container, stripe_client)
    body = _create(api, auth, customer, "pm_card_threeDSecure2Required").json()
    assert body["status"] == "incomplete"
    month = Month(container, hooks, stripe_client, sandbox, clock, customer, body["id"])
    month.deliver_new()
    month.advance(START + DAY)  # 24 hours later
    assert stripe_client.v1.subscriptions.retrieve(body["id"]).status == "incomplete_expired"
    state = agreed(api, auth)
    assert (state["access"], state["status"]) == ("none", "incomplete_expired")
    assert len(notices(container, "subscription_canceled")) == 1
    assert len(_kinds(container, "payment_authentication_required")) == 1


def test_a_trial_without_a_card_says_so_and_is_listed(
        container: Container, api: TestClient, auth: dict[str, str],
        stripe_client: stripe.StripeClient) -> None:
    _, customer = _customer(container, stripe_client)
    strict = api.post("/subscriptions", headers=auth, json={
        "customer_id": customer, "plan_type": "pro", "tenant_id": TENANT, "trial_days": 7})
    assert strict.status_code == 422  # REQUIRE_PAYMENT_METHOD: no trial without a card
    relaxed = container.subscriptions
    relaxed.policy = type(relaxed.policy)(require_payment_method=False)
    body = api.post("/subscriptions", headers=auth, json={
        "customer_id": customer, "plan_type": "pro", "tenant_id": TENANT,
        "trial_days": 7}).json()
    assert (body["status"], body["trialing_without_payment_method"],
            body["payment_method_on_file"]) == ("trialing", True, False)
    listed = api.get("/subscriptions", params={"status": "trialing_without_payment_method"},
                     headers=auth).json()["data"]
    assert [s["id"] for s in listed] == [body["id"]]
    assert api.get("/subscriptions", params={"status": "bogus"}, headers=auth).status_code \
        in (400, 422)
