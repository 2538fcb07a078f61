"""Test clocks: the endpoints, advancing in time order, dunning, and the real-time schedule."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from stripe_sandbox import Sandbox, SandboxConfig, SandboxHTTPClient, schedule

from .billing_setup import (
    DAY,
    HOUR,
    START,
    advance,
    clock_and_customer,
    events,
    make_meter,
    make_plan,
    record_clock_times,
    subscribe,
)


def client_for(sandbox: Sandbox) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_clock", http_client=SandboxHTTPClient(sandbox),
                               max_network_retries=0)


def test_create_retrieve_list_advance_delete(client: stripe.StripeClient, sandbox) -> None:
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": START,
                                                              "name": "demo"})
    assert (clock.status, clock.frozen_time, clock.name) == ("ready", START, "demo")
    assert [c.id for c in client.v1.test_helpers.test_clocks.list().data] == [clock.id]
    answer = advance(client, clock, START + DAY)
    assert (answer.status, answer.frozen_time) == ("advancing", START + DAY)
    assert answer.status_details.advancing.target_frozen_time == START + DAY
    now = client.v1.test_helpers.test_clocks.retrieve(clock.id)
    assert (now.status, now.frozen_time, now.status_details.to_dict()) == ("ready", START + DAY,
                                                                           {})
    with pytest.raises(stripe.InvalidRequestError, match="after its current frozen_time"):
        advance(client, clock, START)
    gone = client.v1.test_helpers.test_clocks.delete(clock.id)
    assert gone.deleted is True
    assert [e["type"] for e in events(sandbox)] == [
        "test_helpers.test_clock.created", "test_helpers.test_clock.advancing",
        "test_helpers.test_clock.ready", "test_helpers.test_clock.deleted"]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.test_helpers.test_clocks.retrieve(clock.id)


def test_deleting_a_clock_deletes_its_customers_and_their_objects(
        client: stripe.StripeClient, sandbox) -> None:
    plan = make_plan(client, make_meter(client), "pro")
    clock, customer = clock_and_customer(client)
    other = client.v1.customers.create(params={"email": "real-time@example.com"})
    sub = subscribe(client, customer, plan)
    client.v1.test_helpers.test_clocks.delete(clock.id)
    assert sandbox.store.get("customer", customer.id) is None
    assert sandbox.store.get("subscription", sub.id) is None
    assert sandbox.store.all("invoice") == []
    assert sandbox.store.get("customer", other.id) is not None


def test_objects_made_while_advancing_carry_the_simulated_time(
        client: stripe.StripeClient) -> None:
    plan = make_plan(client, make_meter(client), "pro")
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, plan)
    renewal = START + 31 * DAY
    advance(client, clock, START + 70 * DAY)
    cycles = sorted((inv for inv in client.v1.invoices.list(params={"subscription": sub.id}).data
                     if inv.billing_reason == "subscription_cycle"), key=lambda i: i.created)
    assert [inv.created for inv in cycles] == [renewal, renewal + 28 * DAY]  # Feb 1, Mar 1
    assert [inv.status_transitions.finalized_at for inv in cycles] == [
        renewal + HOUR, renewal + 28 * DAY + HOUR]
    assert [inv.number[-4:] for inv in cycles] == ["0002", "0003"]


def test_advancing_runs_work_of_many_subscriptions_in_time_order(sandbox) -> None:
    client = client_for(sandbox)
    plan = make_plan(client, make_meter(client), "pro")
    clock, customer = clock_and_customer(client)
    for day, trial in ((1, 5), (2, 1), (3, 3)):  # trials that end in another order
        advance(client, clock, START + day * DAY + day)
        subscribe(client, customer, plan, trial_period_days=trial)
    seen = record_clock_times(sandbox, clock.id)
    advance(client, clock, START + 100 * DAY)
    times = [t for _, t, _ in seen if _ != "test_helpers.test_clock.ready"]
    assert times == sorted(times) and len(times) > 20
    renewals = [obj["created"] for kind, _, obj in seen if kind == "invoice.created"]
    assert renewals == sorted(renewals)


@pytest.mark.parametrize("final_state", ["canceled", "unpaid"])
def test_trial_then_failing_card_retries_on_days_1_4_7_8(final_state: str) -> None:
    sandbox = Sandbox(SandboxConfig(after_final_failure=final_state))
    client = client_for(sandbox)
    plan = make_plan(client, make_meter(client), "pro")
    clock, customer = clock_and_customer(client, card="pm_card_chargeCustomerFail")
    seen = record_clock_times(sandbox, clock.id)
    sub = subscribe(client, customer, plan, trial_period_days=14)
    assert sub.status == "trialing"
    trial_end = START + 14 * DAY

    advance(client, clock, trial_end + 12 * DAY)

    failures = [(t, obj) for kind, t, obj in seen if kind == "invoice.payment_failed"]
    assert [(t - trial_end) // DAY + 1 for t, _ in failures] == [1, 4, 7, 8]
    first = failures[0][0]
    assert first == trial_end + HOUR  # the draft waits an hour, then the charge fails
    assert [obj["attempt_count"] for _, obj in failures] == [1, 2, 3, 4]
    assert [obj["next_payment_attempt"] for _, obj in failures] == [
        first + 3 * DAY, first + 6 * DAY, first + 7 * DAY, None]
    statuses = [obj["status"] for kind, _, obj in seen if kind in (
        "customer.subscription.created", "customer.subscription.updated",
        "customer.subscription.deleted")]
    assert statuses == ["trialing", "active", "past_due", final_state]
    invoice = client.v1.invoices.retrieve(failures[0][1]["id"])
    assert (invoice.status, invoice.attempt_count, invoice.next_payment_attempt) == (
        "open", 4, None)
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.status == final_state
    if final_state == "canceled":
        assert after.cancellation_details.reason == "payment_failed"
        assert [k for k, _, _ in seen].count("customer.subscription.deleted") == 1
        assert invoice.auto_advance is False
    else:  # unpaid: invoices keep coming, as drafts that are not attempted
        advance(client, clock, trial_end + 31 * DAY + 2 * HOUR)
        later = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id)
                                            .latest_invoice)
        assert (later.status, later.auto_advance, later.attempt_count) == ("draft", False, 0)


def test_the_retry_schedule_is_configurable(sandbox) -> None:
    sandbox.config.retry_days = (2,)
    client = client_for(sandbox)
    plan = make_plan(client, make_meter(client), "pro")
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, plan)
    bad = client.v1.payment_methods.attach("pm_card_chargeCustomerFail",
                                           params={"customer": customer.id})
    client.v1.subscriptions.update(sub.id, params={"default_payment_method": bad.id})
    seen = record_clock_times(sandbox, clock.id)
    advance(client, clock, START + 40 * DAY)
    failures = [t for kind, t, _ in seen if kind == "invoice.payment_failed"]
    renewal = START + 31 * DAY
    assert failures == [renewal + HOUR, renewal + HOUR + 2 * DAY]
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_a_new_card_before_the_retry_recovers_the_subscription(
        client: stripe.StripeClient, sandbox) -> None:
    plan = make_plan(client, make_meter(client), "pro")
    clock, customer = clock_and_customer(client, card="pm_card_chargeCustomerFail")
    sub = subscribe(client, customer, plan, trial_period_days=7)
    trial_end = START + 7 * DAY
    advance(client, clock, trial_end + 2 * HOUR)
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    visa = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={
        "invoice_settings": {"default_payment_method": visa.id}})
    advance(client, clock, trial_end + 3 * DAY + 2 * HOUR)  # the first retry
    recovered = client.v1.subscriptions.retrieve(sub.id)
    invoice = client.v1.invoices.retrieve(recovered.latest_invoice)
    assert (recovered.status, invoice.status, invoice.attempt_count) == ("active", "paid", 2)
    previous = events(sandbox, "customer.subscription.updated")[-1]["data"][
        "previous_attributes"]
    assert previous == {"status": "past_due"}


def test_real_time_requests_do_not_scan_subscriptions(sandbox, monkeypatch) -> None:
    client = client_for(sandbox)
    plan = make_plan(client, make_meter(client), "pro")
    customer = client.v1.customers.create(params={
        "payment_method": "pm_card_visa",
        "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    for _ in range(30):
        subscribe(client, customer, plan)
    kind = schedule._KINDS["subscription"]
    calls: list[Any] = []
    original = kind.next_due
    monkeypatch.setattr(kind, "next_due", lambda sub: calls.append(sub) or original(sub))
    for _ in range(20):
        client.v1.customers.retrieve(customer.id)
    assert calls == []  # nothing due: each request only peeks at the earliest entry
    assert schedule.next_due_at(sandbox, None) == min(
        s["items"]["data"][0]["current_period_end"] for s in sandbox.store.all("subscription"))


def test_real_time_subscriptions_fall_due_without_a_clock(sandbox) -> None:
    client = client_for(sandbox)
    plan = make_plan(client, make_meter(client), "pro")
    customer = client.v1.customers.create(params={
        "payment_method": "pm_card_visa",
        "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    sub = subscribe(client, customer, plan, trial_period_days=30)
    sandbox._clock_offset = 30 * DAY + 2 * HOUR  # let real time run on by a month
    after = client.v1.subscriptions.retrieve(sub.id)
    invoice = client.v1.invoices.retrieve(after.latest_invoice)
    assert (after.status, invoice.billing_reason, invoice.status) == (
        "active", "subscription_cycle", "paid")


def test_the_schedule_survives_a_save_and_load(sandbox) -> None:
    from stripe_sandbox.persistence import dump_state, load_state

    client = client_for(sandbox)
    plan = make_plan(client, make_meter(client), "pro")
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, plan)
    restored = Sandbox(SandboxConfig())
    load_state(restored, dump_state(sandbox))
    other = client_for(restored)
    advance(other, clock, START + 31 * DAY + 2 * HOUR)
    renewed = other.v1.subscriptions.retrieve(sub.id)
    invoice = other.v1.invoices.retrieve(renewed.latest_invoice)
    assert (invoice.billing_reason, invoice.status) == ("subscription_cycle", "paid")


def test_a_draft_whose_customer_is_gone_fails_to_finalize(client: stripe.StripeClient,
                                                          sandbox) -> None:
    clock, customer = clock_and_customer(client)
    client.v1.invoice_items.create(params={"customer": customer.id, "amount": 500,
                                           "currency": "usd"})
    invoice = client.v1.invoices.create(params={
        "customer": customer.id, "pending_invoice_items_behavior": "include",
        "auto_advance": True})
    client.v1.customers.delete(customer.id)
    advance(client, clock, START + 2 * HOUR)
    failed = client.v1.invoices.retrieve(invoice.id)
    assert (failed.status, failed.auto_advance) == ("draft", False)
    assert failed.last_finalization_error.code == "resource_missing"
    assert len(events(sandbox, "invoice.finalization_failed")) == 1
