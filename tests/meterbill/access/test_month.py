"""The issue's month, end to end: the sandbox on a test clock, Stripe's own events through the
webhook processor, the dunning service, the outbox and a real SMTP server.

A Pro subscription (14-day trial) on `pm_card_chargeCustomerFail`: the first paid invoice fails
on day 1 and Stripe retries on days 4, 7 and 8. Each day the tenant must be exactly one step
further (reminder, warning, soft suspension, suspension), with one e-mail per step; then the
card is replaced with `pm_card_visa`, the invoice is paid and the tenant is back in full with
a "payment received" e-mail. The same month delivered out of order, twice over and with
replays ends in the same states with the same e-mails: none twice, no step skipped.
"""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents
from stripe_sandbox import Sandbox

from ..smtp import SmtpServer
from .conftest import (
    EMAIL,
    Month,
    as_time,
    notices,
    seconds,
    start_month,
    tenant_row,
    timeline,
)

PRO = 9900  # cents: the Pro base fee, no usage
STEPS = [  # day, dunning state, notice, billing_status, access enabled, multiplier, soft
    (1, "reminder", "dunning_reminder", "past_due", True, 1.0, False),
    (4, "warning", "dunning_warning", "past_due", True, 1.0, False),
    (7, "final_warning", "dunning_final_warning", "past_due", True, 0.5, True),
    (8, "suspended", "dunning_suspended", "suspended", False, 0.0, False),
]


def _walk_the_month(month: Month) -> None:
    container = month.container
    assert tenant_row(container)["billing_status"] == "trialing"
    for day, state, kind, status, enabled, multiplier, soft in STEPS:
        month.advance_to(day)
        invoice = month.invoice()
        assert invoice.attempt_count == day_attempt(day), f"day {day}"
        row = tenant_row(container)
        assert (row["billing_status"], row["api_access_enabled"], row["rate_limit_multiplier"],
                row["soft_suspended"], row["payment_failures"]) == (
            status, enabled, multiplier, soft, day_attempt(day)), f"day {day}"
        assert (row["suspended_at"] is not None) is (state == "suspended")
        entries = timeline(container)
        assert entries[-1].to_state == state and entries[-1].invoice_id == invoice.id
        assert entries[-1].failures == day_attempt(day) and entries[-1].cause == "webhook"
        assert entries[-1].event_id and entries[-1].event_id.startswith("evt_")
        sent = notices(container, kind)
        assert len(sent) == 1, f"day {day}: {kind} recorded {len(sent)} times"
        facts = sent[0].facts or {}
        assert (facts["amount_due"], facts["currency"], facts["invoice_id"]) == (
            PRO, "usd", invoice.id)
        assert facts["invoice_url"] == invoice.hosted_invoice_url and facts["email"] == EMAIL
        assert facts["attempt_count"] == day_attempt(day)
        assert seconds(as_time(facts["next_step_at"])) == invoice.next_payment_attempt
        if state in ("warning", "final_warning"):
            # Named from Stripe's schedule: the fourth attempt, on day 8.
            assert seconds(as_time(facts["suspension_at"])) == month.at_day(8)


def day_attempt(day: int) -> int:
    return {1: 1, 4: 2, 7: 3, 8: 4}[day]


def _pay_with_a_new_card(month: Month) -> None:
    client = month.client
    card = client.v1.payment_methods.attach("pm_card_visa",
                                            params={"customer": month.customer_id})
    client.v1.customers.update(month.customer_id, params={
        "invoice_settings": {"default_payment_method": card.id}})
    invoice = month.invoice()
    assert client.v1.invoices.pay(invoice.id, params={"payment_method": card.id}).status == \
        "paid"
    month.deliver_new()


def _assert_recovered(month: Month) -> None:
    container = month.container
    row = tenant_row(container)
    assert (row["billing_status"], row["api_access_enabled"], row["rate_limit_multiplier"],
            row["soft_suspended"], row["payment_failures"], row["suspended_at"]) == (
        "active", True, 1.0, False, 0, None)
    assert row["last_payment_date"] is not None
    states = [(e.from_state, e.to_state) for e in timeline(container)]
    assert states == [("good_standing", "reminder"), ("reminder", "warning"),
                      ("warning", "final_warning"), ("final_warning", "suspended"),
                      ("suspended", "good_standing")]
    kinds = [n.kind for n in notices(container)]
    assert kinds == ["dunning_reminder", "dunning_warning", "dunning_final_warning",
                     "dunning_suspended", "payment_received"]
    [received] = notices(container, "payment_received")
    assert (received.facts or {})["amount_due"] == PRO


@pytest.mark.parametrize("mode", ["in_order", "shuffled_with_repeats"])
def test_a_month_of_failed_payments_then_a_new_card(
        container: Container, hooks: WebhookComponents, stripe_client: stripe.StripeClient,
        sandbox: Sandbox, smtp_server: SmtpServer, mode: str) -> None:
    # "Mark the subscription unpaid" after the last retry (Stripe's other setting cancels it),
    # so paying the invoice brings the same subscription back.
    sandbox.config.after_final_failure = "unpaid"
    month = start_month(container, hooks, stripe_client, sandbox, mode=mode)
    _walk_the_month(month)
    _pay_with_a_new_card(month)
    _assert_recovered(month)
    if mode != "in_order":  # the noise really happened
        assert month.noise["repeats"] > 5 and month.noise["replays"] >= 8, month.noise
    entitlement = container.entitlement.get("acme")
    assert (entitlement.access, entitlement.rate_limit_multiplier, entitlement.plan) == (
        "full", 1.0, "pro")

    # The e-mails went out through SMTP, once each, in order, to the tenant.
    messages = smtp_server.wait_for(5)
    assert len(messages) == 5
    assert all(m.rcpt_tos == [EMAIL] for m in messages)
    invoice = month.invoice()
    for message in messages[:4]:
        assert "$99.00" in message.subject + message.text
        assert invoice.hosted_invoice_url in message.text
        assert invoice.hosted_invoice_url in message.html
        assert "/billing/portal/" in message.text  # how to update the card
    warning = messages[1]
    assert "suspended" in warning.subject.lower()
    assert "$99.00" in messages[4].text
    subjects = [m.subject for m in messages]
    assert len(set(subjects)) == 5, subjects


def test_cancel_after_the_last_retry_turns_access_off_with_a_notice(
        container: Container, hooks: WebhookComponents, stripe_client: stripe.StripeClient,
        sandbox: Sandbox) -> None:
    assert sandbox.config.after_final_failure == "canceled"  # Stripe's default setting
    month = start_month(container, hooks, stripe_client, sandbox)
    for day in (1, 4, 7, 8):
        month.advance_to(day)
    row = tenant_row(container)
    assert (row["billing_status"], row["api_access_enabled"], row["soft_suspended"]) == (
        "canceled", False, False)
    # The last failed retry and the deletion come together: the cancellation wins and is the
    # one record (domain/access.py), never "suspended" then "canceled" with two e-mails.
    assert [e.to_state for e in timeline(container)][-2:] == ["final_warning", "canceled"]
    assert len(notices(container, "subscription_canceled")) == 1
    assert notices(container, "dunning_suspended") == []
    # Paying the old invoice now does not revive a subscription Stripe ended.
    _pay_with_a_new_card(month)
    assert tenant_row(container)["api_access_enabled"] is False
    assert timeline(container)[-1].to_state == "canceled"
    assert notices(container, "payment_received") == []


def test_held_back_events_jump_to_where_stripe_is(
        container: Container, hooks: WebhookComponents, stripe_client: stripe.StripeClient,
        sandbox: Sandbox) -> None:
    # The endpoint was down from day 1 to day 7: one transition, one e-mail (the current one).
    month = start_month(container, hooks, stripe_client, sandbox)
    for day in (1, 4, 7):
        month.client.v1.test_helpers.test_clocks.advance(
            month.clock_id, params={"frozen_time": month.at_day(day) + 3600})
    month.deliver_new()
    assert [e.to_state for e in timeline(container)] == ["final_warning"]
    assert [n.kind for n in notices(container)] == ["dunning_final_warning"]
    row: dict[str, Any] = tenant_row(container)
    assert (row["payment_failures"], row["rate_limit_multiplier"]) == (3, 0.5)
