"""Every answer and every event payload of the test scenarios has the shape of Stripe's types.

The types are `sdk_schema/stripe_types.json`, generated from Stripe's own SDKs (stripe-node's
TypeScript declarations and stripe-python's annotations) by `sdk_schema/generate.py`; a test
here regenerates it from the installed packages and compares. The scenarios are the fidelity
scenario (one of every resource) and a billing scenario on a test clock: metered usage over a
renewal, a proration, a declined payment, a cancellation with feedback, a tax code, a list with
its total count, a subscription anchored on the 1st of the month.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

from stripe_sandbox import Sandbox, SandboxConfig, SandboxHTTPClient

from .billing_setup import advance, clock_and_customer, make_meter, make_plan, report_usage
from .fidelity_scenario import run as run_fidelity_scenario
from .node_setup import install_stripe_node
from .sdk_schema import generate
from .sdk_schema.check import SCHEMA_FILE, Checker, schema
from .sdk_schema.recorder import SchemaRecorder


def recorded_client() -> tuple[stripe.StripeClient, SchemaRecorder]:
    sandbox = Sandbox(SandboxConfig())
    recorder = SchemaRecorder(sandbox)
    client = stripe.StripeClient("sk_test_schema", max_network_retries=0,
                                 http_client=SandboxHTTPClient(sandbox))
    return client, recorder


def billing_scenario(client: stripe.StripeClient) -> None:
    v1 = client.v1
    start = int(datetime(2026, 1, 15, 9, tzinfo=UTC).timestamp())
    clock, customer = clock_and_customer(client, start=start)
    plan = make_plan(client, make_meter(client), "pro")
    taxed = v1.products.create(params={"name": "Taxed", "tax_code": "txcd_10103001"})
    v1.products.update(taxed.id, params={"tax_code": "txcd_10000000"})
    sub = v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": plan.base.id}, {"price": plan.overage.id}],
        "billing_cycle_anchor_config": {"day_of_month": 1, "hour": 0, "minute": 0,
                                        "second": 0}})
    report_usage(client, customer, 120_000, timestamp=start + 60)
    advance(client, clock, int(datetime(2026, 2, 1, 2, tzinfo=UTC).timestamp()))
    v1.invoices.list(params={"customer": customer.id, "include": ["total_count"]})
    v1.invoices.list(params={"customer": customer.id, "expand": ["data.lines"]})
    seats = v1.prices.create(params={"currency": "usd", "product": taxed.id,
                                     "unit_amount": 900, "recurring": {"interval": "month"}})
    v1.subscription_items.create(params={"subscription": sub.id, "price": seats.id,
                                         "quantity": 2, "proration_behavior": "always_invoice"})
    v1.subscriptions.update(sub.id, params={
        "cancel_at_period_end": True,
        "cancellation_details": {"feedback": "too_expensive", "comment": "pricey"}})
    v1.subscriptions.cancel(sub.id)

    # A declined charge: the 402's payment method is the whole object.
    failing = v1.customers.create(params={
        "payment_method": "pm_card_chargeCustomerFail",
        "invoice_settings": {"default_payment_method": "pm_card_chargeCustomerFail"}})
    v1.invoice_items.create(params={"customer": failing.id, "amount": 2000, "currency": "usd"})
    invoice = v1.invoices.create(params={"customer": failing.id,
                                         "pending_invoice_items_behavior": "include"})
    with pytest.raises(stripe.CardError):
        v1.invoices.pay(invoice.id)
    v1.customers.delete(failing.id)


def test_every_answer_and_event_of_the_scenarios_has_stripes_types() -> None:
    client, recorder = recorded_client()
    outcomes = run_fidelity_scenario(client)
    billing_scenario(client)
    blocked = [e for o in outcomes.values() for e in o.errors]
    assert blocked == []
    # The scenarios covered what they claim: every resource and the billing events.
    assert {"customer", "subscription", "invoice", "event", "list", "error"} <= recorder.objects
    assert {"invoice.paid", "invoice.payment_failed", "customer.subscription.updated",
            "customer.subscription.deleted", "invoiceitem.created"} <= recorder.event_types
    assert recorder.responses > 45 and recorder.events > 40
    if recorder.problems:
        pytest.fail(f"{len(recorder.problems)} violations of Stripe's types:\n"
                    + "\n".join(recorder.problems), pytrace=False)


def test_regenerating_the_schema_from_the_installed_sdks_gives_the_committed_file() -> None:
    recorded = schema()["provenance"]
    install_stripe_node()
    node = json.loads((generate.NODE_STRIPE / "package.json").read_text())["version"]
    installed = {"stripe-node": node, "stripe-python": stripe.VERSION}
    differ = {k: (recorded[k], v) for k, v in installed.items() if recorded[k] != v}
    if differ:
        pytest.skip("the installed SDKs are not the ones the schema was generated from "
                    f"(recorded, installed): {differ}; regenerate with "
                    "`python tests/sandbox/sdk_schema/generate.py`")
    fresh = generate.render(generate.generate())
    assert fresh == SCHEMA_FILE.read_text(encoding="utf-8"), (
        "stripe_types.json is not what generate.py makes from the installed SDKs: regenerate it")


# --- the checker itself ----------------------------------------------------------------------

CHECKER = Checker()


def item(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "si_1", "object": "subscription_item", "billing_thresholds": None, "created": 1,
        "current_period_end": 2, "current_period_start": 1, "current_trial": None,
        "discounts": [], "metadata": {}, "plan": None, "price": None, "quantity": 1,
        "subscription": "sub_1", "tax_rates": []}
    base.update(changes)
    return {k: v for k, v in base.items() if v != "absent"}


def test_the_checker_reports_each_kind_of_violation() -> None:
    problems = CHECKER.fields(schema()["roots"]["subscription_item"],
                              item(plan="absent", price="absent"), "si")
    assert problems == ["si.plan: missing (Stripe always sends it)",
                        "si.price: missing (Stripe always sends it)"]
    bad = item(plan="absent", price="absent", quantity=None, current_trial="absent",
               created=1.5, extra=1)
    assert CHECKER.fields(schema()["roots"]["subscription_item"], bad, "si") == [
        "si.created: 1.5 where Stripe sends an integer",
        "si.current_trial: missing (Stripe always sends it)",
        "si.plan: missing (Stripe always sends it)",
        "si.price: missing (Stripe always sends it)",
        "si.quantity: null where Stripe omits the key or sends an integer",
        "si.extra: not a key of Stripe's SubscriptionItem",
    ]


def test_the_checker_knows_enums_lists_and_events() -> None:
    meter = {"id": "m", "object": "billing.meter", "created": 1,
             "customer_mapping": {"event_payload_key": "k", "type": "by_id"},
             "default_aggregation": {"formula": "median"}, "display_name": "d",
             "event_name": "e", "event_time_window": None, "livemode": False,
             "status": "active", "status_transitions": {"deactivated_at": None}, "updated": 1,
             "value_settings": {"event_payload_key": "v"}}
    assert CHECKER.response(meter) == [
        "billing.meter.default_aggregation.formula: 'median' is not one of Stripe's values "
        "['count', 'last', 'sum']"]
    page = {"object": "list", "data": [], "has_more": False, "url": "/v1/x", "total_count": 0}
    assert CHECKER.response(page) == [
        "list.total_count: Stripe sends no total_count on this list (only with "
        "include[]=total_count)"]
    assert CHECKER.response(page, total_count_asked=True) == []
    event = {"id": "evt", "object": "event", "api_version": "v", "created": 1, "livemode": False,
             "pending_webhooks": 0, "request": None, "type": "billing.meter.updated",
             "data": {"object": dict(meter, default_aggregation={"formula": "sum"}),
                      "previous_attributes": {"display_name": None, "bogus": 1}}}
    assert CHECKER.event(event) == [
        "event billing.meter.updated.data.previous_attributes.display_name: null where Stripe "
        "sends a string",
        "event billing.meter.updated.data.previous_attributes.bogus: not a field of "
        "Billing/Meters:Meter"]
