"""Subscription schedules: a downgrade as the next phase, release, cancel, end behaviours,
time on a test clock, events and what the sandbox refuses."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from .billing_setup import (
    DAY,
    HOUR,
    START,
    advance,
    clock_and_customer,
    events,
    make_meter,
    make_plan,
    report_usage,
    subscribe,
)

FEB_1 = START + 31 * DAY
MAR_1 = FEB_1 + 28 * DAY


@pytest.fixture
def plans(client: stripe.StripeClient) -> dict[str, Any]:
    meter = make_meter(client)
    return {name: make_plan(client, meter, name) for name in ("pro", "enterprise")}


def _on_enterprise(client: stripe.StripeClient, plans: dict[str, Any]) -> tuple[Any, Any, Any]:
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, plans["enterprise"])
    return clock, customer, sub


def _downgrade(client: stripe.StripeClient, sub: Any, plan: Any,
               end_behavior: str = "release") -> Any:
    sched = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    current = sched.phases[0]
    return client.v1.subscription_schedules.update(sched.id, params={
        "end_behavior": end_behavior,
        "phases": [
            {"items": [{"price": i.price,
                        **({"quantity": i["quantity"]} if "quantity" in i else {})}
                       for i in current["items"]],
             "start_date": current.start_date, "end_date": current.end_date},
            {"items": [{"price": plan.base.id, "quantity": 1}, {"price": plan.overage.id}],
             "proration_behavior": "none"},
        ]})


def _cycle_invoices(client: stripe.StripeClient, sub: Any) -> list[Any]:
    found = client.v1.invoices.list(params={"subscription": sub.id}).data
    return sorted((i for i in found if i.billing_reason == "subscription_cycle"),
                  key=lambda i: i.created)


def test_from_subscription_makes_one_phase_until_the_period_end(
        client: stripe.StripeClient, plans: dict[str, Any]) -> None:
    _, _, sub = _on_enterprise(client, plans)
    sched = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    assert (sched.status, sched.subscription, sched.end_behavior) == ("active", sub.id,
                                                                       "release")
    assert [(p.start_date, p.end_date) for p in sched.phases] == [(START, FEB_1)]
    assert [i.price for i in sched.phases[0]["items"]] == [plans["enterprise"].base.id,
                                                           plans["enterprise"].overage.id]
    assert sched.current_phase.to_dict() == {"start_date": START, "end_date": FEB_1}
    assert client.v1.subscriptions.retrieve(sub.id).schedule == sched.id
    with pytest.raises(stripe.InvalidRequestError, match="already managed") as error:
        client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    assert error.value.param == "from_subscription"


def test_a_downgrade_phase_at_the_period_end_is_what_the_renewal_bills(
        client: stripe.StripeClient, sandbox, plans: dict[str, Any]) -> None:
    clock, customer, sub = _on_enterprise(client, plans)
    advance(client, clock, START + 14 * DAY)
    report_usage(client, customer, 1_200_000, timestamp=START + 14 * DAY)
    sched = _downgrade(client, sub, plans["pro"])
    assert [(p.start_date, p.end_date) for p in sched.phases] == [(START, FEB_1),
                                                                  (FEB_1, MAR_1)]
    # Nothing changes before the period end: no proration, still Enterprise.
    assert [i.price.id for i in client.v1.subscriptions.retrieve(sub.id)["items"].data] == [
        plans["enterprise"].base.id, plans["enterprise"].overage.id]
    assert client.v1.invoice_items.list(params={"customer": customer.id}).data == []
    advance(client, clock, FEB_1 + 2 * HOUR)
    renewal = _cycle_invoices(client, sub)[0]
    lines = {line.pricing.price_details.price: line.amount for line in renewal.lines.data}
    # Pro's base for February; January's usage at Enterprise's overage (200,000 × $0.0005).
    assert lines == {plans["pro"].base.id: 9900, plans["enterprise"].overage.id: 10000}
    assert renewal.amount_due == 19900
    now = client.v1.subscriptions.retrieve(sub.id)
    assert [i.price.lookup_key for i in now["items"].data][0] == "pro_base"
    assert now.schedule == sched.id  # still on its last phase
    kinds = [e["type"] for e in events(sandbox) if e["type"].startswith("subscription_sched")]
    assert kinds == ["subscription_schedule.created", "subscription_schedule.updated",
                     "subscription_schedule.updated"]
    # The last phase lasts one interval; then the schedule releases the subscription.
    advance(client, clock, MAR_1 + 2 * HOUR)
    done = client.v1.subscription_schedules.retrieve(sched.id)
    assert (done.status, done.released_subscription, done.subscription) == (
        "released", sub.id, None)
    assert done.current_phase is None
    assert client.v1.subscriptions.retrieve(sub.id).schedule is None
    assert _cycle_invoices(client, sub)[1].lines.data[0].amount == 9900
    assert "subscription_schedule.released" in [e["type"] for e in events(sandbox)]


def test_releasing_before_the_period_end_keeps_the_current_plan(
        client: stripe.StripeClient, sandbox, plans: dict[str, Any]) -> None:
    clock, _, sub = _on_enterprise(client, plans)
    sched = _downgrade(client, sub, plans["pro"])
    released = client.v1.subscription_schedules.release(sched.id)
    assert (released.status, released.released_subscription, released.subscription) == (
        "released", sub.id, None)
    assert client.v1.subscriptions.retrieve(sub.id).schedule is None
    advance(client, clock, FEB_1 + 2 * HOUR)
    assert _cycle_invoices(client, sub)[0].lines.data[0].amount == 49900
    with pytest.raises(stripe.InvalidRequestError, match="released"):
        client.v1.subscription_schedules.release(sched.id)


def test_end_behavior_cancel_ends_the_subscription_after_the_last_phase(
        client: stripe.StripeClient, sandbox, plans: dict[str, Any]) -> None:
    clock, _, sub = _on_enterprise(client, plans)
    sched = client.v1.subscription_schedules.create(params={"from_subscription": sub.id,
                                                            "end_behavior": "cancel"})
    advance(client, clock, FEB_1 + HOUR)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    done = client.v1.subscription_schedules.retrieve(sched.id)
    assert (done.status, done.completed_at) == ("completed", FEB_1)
    assert "subscription_schedule.completed" in [e["type"] for e in events(sandbox)]


def test_cancel_ends_schedule_and_subscription_and_deleting_the_subscription_aborts(
        client: stripe.StripeClient, sandbox, plans: dict[str, Any]) -> None:
    _, _, sub = _on_enterprise(client, plans)
    sched = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    canceled = client.v1.subscription_schedules.cancel(sched.id)
    assert canceled.status == "canceled"
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    kinds = [e["type"] for e in events(sandbox)]
    assert "subscription_schedule.canceled" in kinds
    assert "subscription_schedule.aborted" not in kinds

    _, _, other = _on_enterprise(client, plans)
    second = client.v1.subscription_schedules.create(params={"from_subscription": other.id})
    client.v1.subscriptions.cancel(other.id)
    assert client.v1.subscription_schedules.retrieve(second.id).status == "canceled"
    assert events(sandbox)[-1]["type"] == "subscription_schedule.aborted"


def test_create_with_customer_and_phases_starts_a_subscription(
        client: stripe.StripeClient, plans: dict[str, Any]) -> None:
    clock, customer = clock_and_customer(client)
    sched = client.v1.subscription_schedules.create(params={
        "customer": customer.id, "phases": [
            {"items": [{"price": plans["pro"].base.id}],
             "duration": {"interval": "month", "interval_count": 1}},
            {"items": [{"price": plans["enterprise"].base.id}]}]})
    sub = client.v1.subscriptions.retrieve(sched.subscription)
    assert (sub.status, sub.schedule) == ("active", sched.id)
    assert [(p.start_date, p.end_date) for p in sched.phases] == [(START, FEB_1),
                                                                  (FEB_1, MAR_1)]
    advance(client, clock, FEB_1 + 2 * HOUR)
    assert _cycle_invoices(client, sub)[0].lines.data[0].amount == 49900
    listed = client.v1.subscription_schedules.list(params={"customer": customer.id}).data
    assert [s.id for s in listed] == [sched.id]


@pytest.mark.parametrize(("phase", "param"), [
    ({"trial_end": START + 40 * DAY}, "phases[1][trial_end]"),
    ({"collection_method": "send_invoice"}, "phases[1][collection_method]"),
    ({"proration_behavior": "always_invoice"}, "phases[1][proration_behavior]"),
    ({"start_date": FEB_1 + DAY}, "phases[1][start_date]"),
])
def test_what_the_sandbox_refuses_names_the_parameter(
        client: stripe.StripeClient, plans: dict[str, Any], phase: dict[str, Any],
        param: str) -> None:
    _, _, sub = _on_enterprise(client, plans)
    sched = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    current = sched.phases[0]
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.subscription_schedules.update(sched.id, params={"phases": [
            {"items": [{"price": i.price} for i in current["items"]],
             "start_date": current.start_date, "end_date": current.end_date},
            {"items": [{"price": plans["pro"].base.id}], **phase}]})
    assert error.value.param == param
    assert error.value.http_status == 400


def test_refused_top_level_parameters(client: stripe.StripeClient,
                                      plans: dict[str, Any]) -> None:
    _, customer, sub = _on_enterprise(client, plans)
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.subscription_schedules.create(params={
            "customer": customer.id, "start_date": START + 5 * DAY,
            "phases": [{"items": [{"price": plans["pro"].base.id}]}]})
    assert error.value.param == "start_date"
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.subscription_schedules.create(params={
            "from_subscription": sub.id, "default_settings": {"collection_method":
                                                              "send_invoice"}})
    assert error.value.param == "default_settings[collection_method]"
    sched = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    with pytest.raises(stripe.InvalidRequestError) as error:
        client.v1.subscription_schedules.update(sched.id, params={
            "phases": [{"items": [{"price": plans["pro"].base.id}],
                        "start_date": START + DAY}]})
    assert error.value.param == "phases[0][start_date]"
