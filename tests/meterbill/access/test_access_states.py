"""Every access state through the API: the tenant summary (`GET /tenants/{id}`), the
entitlement, the timeline and the tenant list say the same access, reason and dunning state,
and `api_access_enabled` is true exactly when access is not none."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from fastapi.testclient import TestClient

from meterbill.adapters.db.repositories import TenantRepository
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents
from meterbill.ports.webhooks import parse_event
from stripe_sandbox import Sandbox

from ..webhooks.conftest import event_body, stripe_events
from .conftest import DAY, EMAIL, START, TENANT, Month, notices, start_month


def agreed(api: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    """The entitlement, after checking the summary, timeline and list agree with it."""
    summary = api.get(f"/tenants/{TENANT}", headers=auth).json()
    entitlement = api.get(f"/tenants/{TENANT}/entitlement", headers=auth).json()
    entries = api.get(f"/tenants/{TENANT}/timeline", headers=auth).json()["data"]
    listed = next(t for t in api.get("/tenants", headers=auth).json()["data"]
                  if t["tenant_id"] == TENANT)
    for key in ("access", "rate_limit_multiplier", "reason", "dunning_state"):
        assert summary[key] == entitlement[key], key
    assert entitlement["dunning_state"] == (entries[-1]["to_state"] if entries
                                            else "good_standing")
    enabled = entitlement["access"] != "none"
    assert summary["tenant"]["api_access_enabled"] is enabled
    assert listed["api_access_enabled"] is enabled  # the row's column, as the writer left it
    assert (listed["billing_status"], summary["tenant"]["billing_status"]) == (
        summary["status"], summary["status"])
    return {**entitlement, "status": summary["status"]}


def state(body: dict[str, Any]) -> tuple[Any, ...]:
    return (body["access"], body["rate_limit_multiplier"], body["dunning_state"],
            body["status"], body["reason"])


def test_without_a_subscription_and_in_a_trial(container: Container, api: TestClient,
                                               auth: dict[str, str]) -> None:
    tenant = container.customers.ensure_customer(TENANT, EMAIL, "Acme Inc.")
    assert state(agreed(api, auth)) == ("none", 0.0, "good_standing", "none",
                                        "no subscription")
    assert tenant.stripe_customer_id is not None
    created = api.post("/subscriptions", headers=auth, json={
        "tenant_id": TENANT, "customer_id": tenant.stripe_customer_id, "plan_type": "pro",
        "payment_method_id": "pm_card_visa"})
    assert created.status_code == 201, created.text
    assert state(agreed(api, auth)) == ("full", 1.0, "good_standing", "trialing",
                                        "subscription trialing")


@pytest.fixture
def trialing(container: Container) -> str:
    tenant = container.customers.ensure_customer(TENANT, EMAIL, "Acme Inc.")
    assert tenant.stripe_customer_id is not None
    return container.subscriptions.create(TENANT, tenant.stripe_customer_id, "pro",
                                          payment_method_id="pm_card_visa").id


def test_each_manual_step_and_the_reset(api: TestClient, auth: dict[str, str],
                                        trialing: str) -> None:
    expected = {
        1: ("full", 1.0, "reminder", "trialing",
            "payment overdue after 1 failed payment attempt (reminder)"),
        2: ("full", 1.0, "warning", "trialing",
            "payment overdue after 2 failed payment attempts (warning)"),
        3: ("reduced", 0.5, "final_warning", "trialing",
            "payment overdue: reduced access after 3 failed payment attempts (final_warning)"),
        4: ("none", 0.0, "suspended", "suspended",
            "suspended for non-payment after 4 failed payment attempts"),
        0: ("full", 1.0, "good_standing", "trialing", "subscription trialing"),
    }
    for count, want in expected.items():
        step = api.post("/dunning/process", headers=auth, json={
            "tenant_id": TENANT, "failure_count": count, "invoice_amount": 9900})
        assert step.status_code == 200, step.text
        assert (step.json()["access"], step.json()["to_state"]) == (want[0], want[2])
        assert state(agreed(api, auth)) == want, count


def test_cancel_now_is_canceled_everywhere_with_one_notice(
        container: Container, api: TestClient, auth: dict[str, str], trialing: str,
        hooks: WebhookComponents, sandbox: Sandbox) -> None:
    canceled = api.delete(f"/subscriptions/{trialing}?at_period_end=false", headers=auth)
    assert canceled.status_code == 200, canceled.text
    body = agreed(api, auth)
    assert state(body) == ("none", 0.0, "canceled", "canceled", "subscription canceled")
    [entry] = api.get(f"/tenants/{TENANT}/timeline", headers=auth).json()["data"]
    assert (entry["from_state"], entry["to_state"], entry["step"], entry["cause"]) == (
        "good_standing", "canceled", "cancellation", "request")
    # Stripe's customer.subscription.deleted comes after: the same record, nothing new.
    with container.db.session() as session:
        row = TenantRepository(session).get(TENANT)
        assert row is not None and row.stripe_customer_id is not None
        customer = row.stripe_customer_id
    for event in stripe_events(sandbox, customer):
        receipt = hooks.intake.store(parse_event(event_body(event)))
        assert receipt.row_id is not None
        assert hooks.processor.process(receipt.row_id).outcome in ("handled", "skipped")
    assert state(agreed(api, auth)) == state(body)
    assert len(api.get(f"/tenants/{TENANT}/timeline", headers=auth).json()["data"]) == 1
    assert len(notices(container, "subscription_canceled")) == 1


def test_cancel_at_period_end_keeps_full_access(api: TestClient, auth: dict[str, str],
                                               trialing: str) -> None:
    pending = api.delete(f"/subscriptions/{trialing}", headers=auth)
    assert pending.status_code == 200 and pending.json()["cancel_at_period_end"] is True
    assert state(agreed(api, auth)) == (
        "full", 1.0, "good_standing", "trialing",
        "subscription trialing; cancels at the period end")


def test_an_incomplete_subscription_is_reduced_until_it_expires(
        container: Container, api: TestClient, auth: dict[str, str],
        hooks: WebhookComponents, stripe_client: stripe.StripeClient,
        sandbox: Sandbox) -> None:
    """The first payment waits for 3-D Secure: reduced, in good standing (no dunning step for
    an invoice that was never paid for a service never paid); 23 hours later, none."""
    clock = stripe_client.v1.test_helpers.test_clocks.create(params={"frozen_time": START})
    customer = stripe_client.v1.customers.create(params={"email": EMAIL,
                                                         "test_clock": clock.id})
    with container.db.session() as session:
        TenantRepository(session).claim_customer(TENANT, EMAIL, "Acme Inc.", customer.id)
    view = container.subscriptions.create(TENANT, customer.id, "pro", trial_days=0,
                                          payment_method_id="pm_card_authenticationRequired")
    assert view.status == "incomplete" and view.next_action is not None
    month = Month(container, hooks, stripe_client, sandbox, clock.id, customer.id, view.id)
    month.deliver_new()
    waiting = ("reduced", 0.5, "good_standing", "incomplete",
               "subscription incomplete: the first payment awaits the customer's "
               "authentication")
    assert state(agreed(api, auth)) == waiting
    assert notices(container, "dunning_reminder") == []
    month.advance(START + DAY)  # 23 hours unpaid: Stripe expires it
    assert state(agreed(api, auth)) == ("none", 0.0, "canceled", "incomplete_expired",
                                        "subscription incomplete_expired")


@pytest.mark.parametrize("after_final_failure", ["unpaid", "canceled"])
def test_a_month_of_failures_agrees_at_every_step(
        container: Container, api: TestClient, auth: dict[str, str],
        hooks: WebhookComponents, stripe_client: stripe.StripeClient, sandbox: Sandbox,
        after_final_failure: str) -> None:
    sandbox.config.after_final_failure = after_final_failure
    month = start_month(container, hooks, stripe_client, sandbox)
    assert state(agreed(api, auth))[:3] == ("full", 1.0, "good_standing")
    seen = []
    for day in (1, 4, 7, 8):
        month.advance_to(day)
        body = agreed(api, auth)
        seen.append((body["access"], body["dunning_state"], body["status"]))
    last = ("none", "suspended", "suspended") if after_final_failure == "unpaid" \
        else ("none", "canceled", "canceled")
    assert seen == [("full", "reminder", "past_due"), ("full", "warning", "past_due"),
                    ("reduced", "final_warning", "past_due"), last]
    card = stripe_client.v1.payment_methods.attach("pm_card_visa",
                                                   params={"customer": month.customer_id})
    stripe_client.v1.invoices.pay(month.invoice().id, params={"payment_method": card.id})
    month.deliver_new()
    body = agreed(api, auth)
    if after_final_failure == "unpaid":
        assert state(body) == ("full", 1.0, "good_standing", "active", "subscription active")
    else:  # a payment does not revive what Stripe ended
        assert state(body)[:3] == ("none", 0.0, "canceled")


def test_a_zero_invoice_restores_without_a_receipt(
        container: Container, api: TestClient, auth: dict[str, str], trialing: str,
        hooks: WebhookComponents, sandbox: Sandbox) -> None:
    api.post("/dunning/process", headers=auth, json={
        "tenant_id": TENANT, "failure_count": 4, "invoice_amount": 9900})
    assert agreed(api, auth)["dunning_state"] == "suspended"
    # Stripe's events of the trial's $0 first invoice come in: it is paid, so the tenant is
    # restored, but no money came and no "Payment received: $0.00" goes out.
    with container.db.session() as session:
        row = TenantRepository(session).get(TENANT)
        assert row is not None and row.stripe_customer_id is not None
        customer = row.stripe_customer_id
    paid = [e for e in stripe_events(sandbox, customer) if e["type"] == "invoice.paid"]
    assert paid and paid[0]["data"]["object"]["amount_paid"] == 0
    for event in stripe_events(sandbox, customer):
        receipt = hooks.intake.store(parse_event(event_body(event)))
        assert receipt.row_id is not None
        hooks.processor.process(receipt.row_id)
    assert state(agreed(api, auth)) == ("full", 1.0, "good_standing", "trialing",
                                        "subscription trialing")
    assert api.get(f"/tenants/{TENANT}/timeline", headers=auth).json()["data"][-1]["step"] \
        == "recovery"
    assert notices(container, "payment_received") == []
