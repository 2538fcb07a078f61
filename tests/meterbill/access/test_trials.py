"""Trials without a payment method: the reminder three days before the end, then the policy's
grace period and suspension (Stripe's `create_invoice` end behaviour), or suspension at once
when Stripe pauses the subscription (`pause`); a card and a payment restore the tenant."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from meterbill.adapters.db.repositories import TenantRepository
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents
from meterbill.config import Settings
from stripe_sandbox import Sandbox

from ..conftest import make_settings
from ..smtp import SmtpServer
from .conftest import (
    DAY,
    EMAIL,
    HOUR,
    START,
    TENANT,
    Month,
    as_time,
    notices,
    seconds,
    tenant_row,
    timeline,
)


@pytest.fixture
def settings(database_url: str, smtp_server: SmtpServer) -> Settings:
    # Trials may start without a card.
    return make_settings(database_url, smtp_url=smtp_server.url, require_payment_method=False)


def _trial_without_card(container: Container, hooks: WebhookComponents,
                        client: stripe.StripeClient, sandbox: Sandbox,
                        **subscription: Any) -> tuple[Month, int]:
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": START})
    customer = client.v1.customers.create(params={"email": EMAIL, "test_clock": clock.id})
    with container.db.session() as session:
        TenantRepository(session).claim_customer(TENANT, EMAIL, "Acme Inc.", customer.id)
    if subscription:
        plan = container.catalog.get("pro")
        prices = container.gateway.prices_by_lookup_key([plan.base_lookup_key])
        sub = client.v1.subscriptions.create(params={  # type: ignore[arg-type]
            "customer": customer.id, "trial_period_days": 14,
            "items": [{"price": prices[plan.base_lookup_key].id, "quantity": 1}],
            "metadata": {"tenant_id": TENANT, "plan_type": "pro"}, **subscription})
        sub_id, trial_end = sub.id, int(sub.trial_end or 0)
    else:
        view = container.subscriptions.create(TENANT, customer.id, "pro")
        assert view.trial_end is not None
        sub_id, trial_end = view.id, int(view.trial_end.timestamp())
    month = Month(container, hooks, client, sandbox, clock.id, customer.id, sub_id)
    month.first_failure = trial_end + HOUR
    month.deliver_new()
    return month, trial_end


def test_a_trial_that_ends_without_a_card_gets_grace_then_suspension(
        container: Container, hooks: WebhookComponents, stripe_client: stripe.StripeClient,
        sandbox: Sandbox, smtp_server: SmtpServer) -> None:
    month, trial_end = _trial_without_card(container, hooks, stripe_client, sandbox)
    month.advance(trial_end - 3 * DAY + HOUR)  # Stripe's trial_will_end
    [reminder] = notices(container, "trial_ending_no_payment_method")
    assert seconds(as_time((reminder.facts or {})["trial_end"])) == trial_end
    assert timeline(container) == []

    month.advance_to(1)  # the first invoice fails: nothing to charge
    row = tenant_row(container)
    assert (row["billing_status"], row["api_access_enabled"], row["rate_limit_multiplier"]) == (
        "past_due", True, 1.0)
    assert [e.to_state for e in timeline(container)] == ["trial_grace"]
    assert notices(container, "dunning_reminder") == []  # the trial rule, not the steps

    month.advance_to(4)  # the first retry, past the three days of grace
    row = tenant_row(container)
    assert (row["billing_status"], row["api_access_enabled"]) == ("suspended", False)
    assert [e.to_state for e in timeline(container)] == ["trial_grace", "trial_suspended"]
    [suspended] = notices(container, "trial_ended_suspended")
    assert seconds(as_time((suspended.facts or {})["trial_end"])) == trial_end
    assert container.entitlement.get(TENANT).reason == \
        "trial ended without a payment method: suspended"

    card = stripe_client.v1.payment_methods.attach("pm_card_visa",
                                                   params={"customer": month.customer_id})
    stripe_client.v1.invoices.pay(month.invoice().id, params={"payment_method": card.id})
    month.deliver_new()
    row = tenant_row(container)
    assert (row["billing_status"], row["api_access_enabled"]) == ("active", True)
    assert timeline(container)[-1].to_state == "good_standing"
    assert len(notices(container, "payment_received")) == 1
    subjects = [m.subject for m in smtp_server.wait_for(3)]
    assert len(subjects) == 3 and all(m.rcpt_tos == [EMAIL] for m in smtp_server.messages)


def test_a_trial_paused_for_want_of_a_card_is_suspended_at_once(
        container: Container, hooks: WebhookComponents, stripe_client: stripe.StripeClient,
        sandbox: Sandbox) -> None:
    month, trial_end = _trial_without_card(
        container, hooks, stripe_client, sandbox,
        trial_settings={"end_behavior": {"missing_payment_method": "pause"}})
    assert tenant_row(container)["billing_status"] == "trialing"
    month.advance(trial_end + HOUR)
    row = tenant_row(container)
    assert (row["billing_status"], row["api_access_enabled"]) == ("suspended", False)
    [entry] = timeline(container)
    assert (entry.to_state, entry.step) == ("trial_suspended", "trial_suspension")
    assert len(notices(container, "trial_ended_suspended")) == 1
    entitlement = container.entitlement.get(TENANT)
    assert (entitlement.access, entitlement.dunning_state) == ("none", "trial_suspended")
