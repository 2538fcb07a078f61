"""Processing: handlers decide on Stripe's current state, so order and repeats do not matter."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
import stripe

from meterbill.adapters.db.inbox import InboxRepository, NoticeRepository
from meterbill.adapters.db.repositories import SubscriptionRepository
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents
from meterbill.domain.clock import utcnow
from meterbill.ports.webhooks import parse_event
from stripe_sandbox import Sandbox

from .conftest import (
    Renewal,
    event_body,
    inbox_rows,
    pay_renewal,
    reset_tenant,
    start_renewal,
    stripe_events,
    tenant_state,
)


def deliver(hooks: WebhookComponents, events: list[dict[str, Any]]) -> list[str]:
    """Store each event (as the endpoint would) and process it at once; the outcomes."""
    outcomes = []
    for event in events:
        receipt = hooks.intake.store(parse_event(event_body(event)))
        if receipt.row_id is not None:
            outcomes.append(hooks.processor.process(receipt.row_id).outcome)
    return outcomes


def of_type(events: list[dict[str, Any]], event_type: str,
            object_id: str | None = None) -> dict[str, Any]:
    return next(e for e in events if e["type"] == event_type
                and (object_id is None or e["data"]["object"]["id"] == object_id))


def test_in_order_the_tenant_ends_active_with_failures_reset(
        hooks: WebhookComponents, container: Container, renewal: Renewal) -> None:
    outcomes = deliver(hooks, renewal.events)
    assert "handled" in outcomes and "failed" not in outcomes and "dead" not in outcomes
    state = tenant_state(container, renewal.tenant_id)
    assert state["billing_status"] == "active" and state["api_access_enabled"] is True
    assert state["payment_failures"] == 0
    assert state["stripe_subscription_id"] == renewal.subscription_id
    assert state["current_plan"] == "starter"
    assert state["last_payment_date"] is not None
    with container.db.session() as session:
        row = SubscriptionRepository(session).get(renewal.subscription_id)
        assert row is not None and row.status == "active" and row.plan_type == "starter"
    statuses = {r.event_id: r.status for r in inbox_rows(container)}
    assert statuses[of_type(renewal.events, "invoice.paid")["id"]] == "handled"
    assert statuses[of_type(renewal.events, "customer.updated")["id"]] == "ignored"


def test_a_failed_renewal_records_the_failure_count_and_past_due(
        hooks: WebhookComponents, container: Container, stripe_client: stripe.StripeClient,
        sandbox: Sandbox) -> None:
    scenario, _ = start_renewal(container, stripe_client)
    events = stripe_events(sandbox, scenario.customer_id)
    deliver(hooks, events)
    state = tenant_state(container, scenario.tenant_id)
    assert state["billing_status"] == "past_due"
    assert state["payment_failures"] == 1  # the invoice's attempt_count, read from Stripe
    # The dunning policy's first step (a reminder) keeps full access while Stripe retries.
    assert state["rate_limit_multiplier"] == 1.0 and state["api_access_enabled"] is True


def test_payment_failed_after_payment_succeeded_leaves_the_tenant_active(
        hooks: WebhookComponents, container: Container, renewal: Renewal) -> None:
    deliver(hooks, [of_type(renewal.events, "customer.subscription.created")])
    succeeded = of_type(renewal.events, "invoice.payment_succeeded", renewal.renewal_invoice)
    failed = of_type(renewal.events, "invoice.payment_failed", renewal.renewal_invoice)
    assert failed["created"] <= succeeded["created"]  # Stripe's order: failure first
    assert deliver(hooks, [succeeded, failed]) == ["handled", "handled"]
    state = tenant_state(container, renewal.tenant_id)
    assert state["billing_status"] == "active" and state["payment_failures"] == 0


@pytest.mark.parametrize("seed", range(4))
def test_any_order_with_repeats_ends_in_the_in_order_state(
        hooks: WebhookComponents, container: Container, renewal: Renewal, seed: int) -> None:
    # Property: for random orders of the month's events, each delivered once or twice, the
    # tenant ends as in-order delivery leaves it, and each event is handled once.
    deliver(hooks, renewal.events)
    expected = tenant_state(container, renewal.tenant_id)
    reset_tenant(container, renewal.tenant_id)
    dice = random.Random(seed)
    shuffled = [e for e in renewal.events for _ in range(dice.choice((1, 2)))]
    dice.shuffle(shuffled)
    deliver(hooks, shuffled)
    assert tenant_state(container, renewal.tenant_id) == expected
    rows = inbox_rows(container)
    assert len(rows) == len(renewal.events)
    # Handled exactly once each; types without a handler were never handed to a worker.
    assert all((r.status, r.attempts) in (("handled", 1), ("ignored", 0)) for r in rows)
    assert any(r.status == "handled" for r in rows)


def test_subscription_deleted_turns_access_off_even_if_an_old_update_comes_last(
        hooks: WebhookComponents, container: Container, renewal: Renewal,
        stripe_client: stripe.StripeClient, sandbox: Sandbox) -> None:
    stripe_client.v1.subscriptions.cancel(renewal.subscription_id)
    events = stripe_events(sandbox, renewal.customer_id)
    deleted = of_type(events, "customer.subscription.deleted")
    stale_update = of_type(events, "customer.subscription.updated")
    deliver(hooks, [deleted, stale_update])
    state = tenant_state(container, renewal.tenant_id)
    assert state["billing_status"] == "canceled" and state["api_access_enabled"] is False


def test_unknown_customer_is_retried_then_parked(hooks: WebhookComponents,
                                                 container: Container, renewal: Renewal) -> None:
    event = of_type(renewal.events, "customer.subscription.created")
    event = {**event, "id": "evt_unknown_customer",
             "data": {"object": {**event["data"]["object"], "customer": "cus_nobody"}}}
    receipt = hooks.intake.store(parse_event(event_body(event)))
    assert receipt.row_id is not None
    assert hooks.processor.process(receipt.row_id).outcome == "failed"
    with container.db.session() as session:
        row = InboxRepository(session).get(receipt.row_id)
        assert row is not None and row.status == "failed" and row.next_attempt_at is not None
        assert "cus_nobody" in (row.last_error or "")
    # Not due yet: a second worker (or the sweep) does nothing.
    assert hooks.processor.process(receipt.row_id).outcome == "skipped"
    later = utcnow() + timedelta(hours=2)
    hooks.processor.clock = lambda: later
    assert hooks.processor.process(receipt.row_id).outcome == "parked"


def test_a_failing_handler_is_retried_with_backoff_then_dead(
        hooks: WebhookComponents, container: Container, renewal: Renewal) -> None:
    calls: list[str] = []

    def broken(ctx: Any, event: Any) -> str:
        calls.append(event.id)
        raise RuntimeError("handler exploded")

    hooks.processor.handlers = {"invoice.paid": broken}
    receipt = hooks.intake.store(parse_event(event_body(of_type(renewal.events,
                                                                "invoice.paid"))))
    assert receipt.row_id is not None
    now = [utcnow()]
    hooks.processor.clock = lambda: now[0]
    delays = []
    for _ in range(3):  # max_attempts is 3 in these tests, retry_base_seconds 10
        result = hooks.processor.process(receipt.row_id)
        with container.db.session() as session:
            row = InboxRepository(session).get(receipt.row_id)
            assert row is not None
            assert "RuntimeError: handler exploded" in (row.last_error or "")
            assert "Traceback" in (row.traceback or "")
            if row.next_attempt_at is not None:
                delays.append(row.next_attempt_at - now[0])
                # Not due before its time: an early sweep or second worker skips it.
                assert hooks.processor.process(receipt.row_id).outcome == "skipped"
                now[0] = row.next_attempt_at
    assert result.outcome == "dead" and len(calls) == 3
    assert delays == [timedelta(seconds=10), timedelta(seconds=20)]
    with container.db.session() as session:
        assert InboxRepository(session).counts()["dead"] == 1


def test_trial_ending_without_a_card_records_one_reminder(
        hooks: WebhookComponents, container: Container, stripe_client: stripe.StripeClient,
        sandbox: Sandbox) -> None:
    customer = stripe_client.v1.customers.create(params={"email": "trial@example.com"})
    with container.db.session() as session:
        from meterbill.adapters.db.repositories import TenantRepository

        TenantRepository(session).claim_customer("trial-co", None, None, customer.id)
    plan = container.catalog.get("starter")
    price = container.gateway.prices_by_lookup_key([plan.base_lookup_key])
    subscription = stripe_client.v1.subscriptions.create(params={
        "customer": customer.id, "trial_period_days": 14,
        "items": [{"price": price[plan.base_lookup_key].id, "quantity": 1}],
        "metadata": {"plan_type": "starter"},
        "trial_settings": {"end_behavior": {"missing_payment_method": "cancel"}}})
    obj = stripe_client.v1.subscriptions.retrieve(subscription.id).to_dict()
    event = {"id": "evt_trial_will_end_1", "object": "event", "created": obj["created"],
             "livemode": False,
             "type": "customer.subscription.trial_will_end", "data": {"object": obj}}
    assert deliver(hooks, [event]) == ["handled"]
    replayed = hooks.admin.replay("evt_trial_will_end_1")
    assert replayed.status == "received"
    hooks.runner.run_all()  # type: ignore[attr-defined]
    with container.db.session() as session:
        notices = NoticeRepository(session).all("trial_ending_no_payment_method")
        assert [(n.tenant_id, n.event_id) for n in notices] == [
            ("trial-co", "evt_trial_will_end_1")]
    # With a card on file there is nothing to remind about.
    stripe_client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    deliver(hooks, [{**event, "id": "evt_trial_will_end_2"}])
    with container.db.session() as session:
        assert len(NoticeRepository(session).all("trial_ending_no_payment_method")) == 1


def test_invoice_created_flushes_usage_for_a_draft_renewal(
        container: Container, stripe_client: stripe.StripeClient, sandbox: Sandbox) -> None:
    from meterbill.bootstrap.webhooks import build_webhooks

    from .conftest import ManualRunner, make_options

    flushed: list[tuple[str, Any]] = []

    class Recorder:
        def flush(self, customer_id: str, period_end: Any) -> None:
            flushed.append((customer_id, period_end))

    hooks = build_webhooks(container, options=make_options(), runner=ManualRunner(),
                           usage=Recorder())
    scenario, _ = start_renewal(container, stripe_client)
    events = stripe_events(sandbox, scenario.customer_id)
    created = [e for e in events if e["type"] == "invoice.created"]
    assert len(created) == 2
    # Both invoices are past draft by now: too late to add usage, nothing is flushed.
    assert deliver(hooks, created) == ["handled", "handled"]
    assert flushed == []
    # A renewal caught while its invoice is still a draft (Stripe waits an hour to finalize).
    pay_renewal(stripe_client, scenario)
    subscription = stripe_client.v1.subscriptions.retrieve(scenario.subscription_id)
    period_end = subscription["items"].data[0].current_period_end
    customer = stripe_client.v1.customers.retrieve(scenario.customer_id)
    stripe_client.v1.test_helpers.test_clocks.advance(
        str(customer.test_clock), params={"frozen_time": period_end + 60})
    events = stripe_events(sandbox, scenario.customer_id)
    draft_created = [e for e in events if e["type"] == "invoice.created"][-1]
    assert draft_created["id"] not in {e["id"] for e in created}
    assert deliver(hooks, [draft_created]) == ["handled"]
    assert [(c, int(end.timestamp())) for c, end in flushed] == [
        (scenario.customer_id, period_end)]
