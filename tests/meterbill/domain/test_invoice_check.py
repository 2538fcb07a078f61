"""The expected invoice (domain/invoice_check.py), property-tested against the sandbox's own
invoice maths (stripe_sandbox.billing_math: Stripe's tiers and rounding) and against invoices
the sandbox actually finalizes; the comparison and the rules beyond equality."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import stripe
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from meterbill.bootstrap import Container
from meterbill.domain.invoice_check import (
    DraftFacts,
    InvoiceLine,
    PriceTier,
    ReviewRules,
    Segment,
    compare,
    describe,
    expected_lines,
    metered_amount,
    rule_reasons,
    tiered_amount,
)
from meterbill.domain.plans import Plan, load_catalog
from stripe_sandbox import Sandbox, SandboxHTTPClient
from stripe_sandbox import billing_math as stripe_math

CATALOG = load_catalog()
PLANS = list(CATALOG)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 2, 1, tzinfo=UTC)

units = st.decimals(min_value=0, max_value=1000, places=4, allow_nan=False,
                    allow_infinity=False)


@st.composite
def tier_lists(draw: st.DrawFn) -> list[PriceTier]:
    bounds = sorted(set(draw(st.lists(st.integers(1, 2_000_000), min_size=0, max_size=4))))
    tiers = [PriceTier(b, draw(units), draw(units)) for b in bounds]
    return tiers + [PriceTier(None, draw(units), draw(units))]


def as_stripe(tiers: list[PriceTier]) -> list[stripe_math.Tier]:
    return [stripe_math.Tier(t.up_to, t.unit, t.flat) for t in tiers]


@given(tier_lists(), st.integers(0, 5_000_000))
def test_graduated_tiers_price_as_the_sandbox_does(tiers: list[PriceTier],
                                                   quantity: int) -> None:
    theirs = stripe_math.to_cents(stripe_math.graduated_amount(as_stripe(tiers),
                                                               Decimal(quantity)))
    assert tiered_amount(tiers, quantity, "graduated") == theirs


@given(tier_lists(), st.integers(0, 5_000_000))
def test_volume_tiers_price_as_the_sandbox_does(tiers: list[PriceTier], quantity: int) -> None:
    theirs = stripe_math.to_cents(stripe_math.volume_amount(as_stripe(tiers), Decimal(quantity)))
    assert tiered_amount(tiers, quantity, "volume") == theirs


def catalog_price(plan: Plan) -> dict[str, object]:
    """The metered price `meterbill catalog sync` makes for `plan`, in Stripe's shape."""
    return {"billing_scheme": "tiered", "tiers_mode": "graduated",
            "tiers": [{"up_to": plan.included_quantity, "unit_amount": 0},
                      {"up_to": "inf",
                       "unit_amount_decimal": str(plan.overage_unit_amount)}]}


@given(st.sampled_from(PLANS), st.integers(0, 50_000_000))
@example(PLANS[0], 10_005)  # a half cent: 5 x 0.1c rounds up
def test_a_plans_metered_line_is_the_sandboxs_line_amount(plan: Plan, used: int) -> None:
    assert metered_amount(plan, used) == stripe_math.line_amount(catalog_price(plan), used)


@given(st.sampled_from(PLANS), st.lists(st.integers(0, 2_000_000), min_size=1, max_size=3))
def test_segments_of_one_plan_bill_as_one_line(plan: Plan, parts: list[int]) -> None:
    segments = [Segment(plan, T0, T1, used) for used in parts]
    lines = expected_lines(plan, (T0, T1), segments)
    assert [(line.part, line.quantity) for line in lines] == [("base", 1),
                                                            ("overage", sum(parts))]
    assert lines[1].amount == metered_amount(plan, sum(parts))


line_st = st.builds(InvoiceLine, plan=st.sampled_from([p.key for p in PLANS]),
                    part=st.sampled_from(["base", "overage"]),
                    quantity=st.integers(0, 10**7), amount=st.integers(-10**6, 10**7))


@given(st.lists(line_st, max_size=6), st.integers(0, 100))
def test_the_same_lines_never_differ(lines: list[InvoiceLine], tolerance: int) -> None:
    assert compare(lines, list(reversed(lines)), tolerance) == ()


@given(line_st, st.integers(0, 100), st.integers(-500, 500))
def test_an_amount_differs_only_beyond_the_tolerance(line: InvoiceLine, tolerance: int,
                                                     delta: int) -> None:
    moved = InvoiceLine(line.plan, line.part, line.quantity, line.amount + delta)
    found = compare([moved], [line], tolerance)
    if abs(delta) <= tolerance:
        assert found == ()
    else:
        assert [(d.key, d.amount) for d in found] == [(line.key, delta)]


def test_a_line_on_one_side_only_is_a_difference_unless_it_is_zero() -> None:
    pro = CATALOG.get("pro")
    ours = expected_lines(pro, None, [Segment(pro, T0, T1, 0)])
    theirs = [InvoiceLine("pro", "base", 1, 9900),
              InvoiceLine(None, "other", 1, 500, label="item: setup fee")]
    found = compare(theirs, ours)
    assert [(d.key, d.amount) for d in found] == [(("item: setup fee", "other"), 500)]
    assert describe("t-1", "Jan", found, "queries", {"pro": "Pro"}) == (
        "t-1, Jan: item: setup fee: Stripe 1 = $5.00; meterbill: no such line; +1")


def test_each_rule_holds_only_when_on() -> None:
    facts = DraftFacts("t-1", total=60_000, used=400_000, trailing_usage=(100_000,) * 3,
                       first_invoice=True, has_proration=True, balance_applied=1_000)
    assert rule_reasons(ReviewRules(), facts) == ()
    every = ReviewRules(first_invoice=True, usage_multiple=Decimal(3),
                        amount_above_cents=50_000, proration=True, credit_balance=True)
    assert rule_reasons(every, facts) == (
        "first invoice of the tenant",
        "usage 400,000 is above 3x the trailing three-period average (100,000)",
        "amount $600.00 is above $500.00", "a proration line is present",
        "a credit balance of $10.00 is applied")
    # Under three earlier periods there is no average to compare with.
    young = DraftFacts("t-1", total=0, used=400_000, trailing_usage=(100_000,))
    assert rule_reasons(every, young) == ()


# --- against invoices the sandbox finalizes ----------------------------------------------------


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.sampled_from(PLANS), used=st.integers(0, 3_000_000))
def test_the_expected_invoice_is_the_renewal_the_sandbox_finalizes(
        container: Container, sandbox: Sandbox, plan: Plan, used: int) -> None:
    client = stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox),
                                 max_network_retries=0)
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": int(T0.timestamp())})
    customer = client.v1.customers.create(params={
        "test_clock": clock.id, "payment_method": "pm_card_visa",
        "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    prices = {p.lookup_key: p for p in client.v1.prices.list(params={
        "lookup_keys": [plan.base_lookup_key, plan.overage_lookup_key]}).data}
    sub = client.v1.subscriptions.create(params={"customer": customer.id, "items": [
        {"price": prices[plan.base_lookup_key].id, "quantity": 1},
        {"price": prices[plan.overage_lookup_key].id}]})
    client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": int(T0.timestamp()) + 7200})
    if used:
        client.v1.billing.meter_events.create(params={
            "event_name": plan.meter_event_name, "timestamp": int(T0.timestamp()) + 3600,
            "payload": {"stripe_customer_id": customer.id, "value": str(used)}})
    renewal = datetime.fromtimestamp(sub["items"].data[0].current_period_end, UTC)
    client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": int((renewal + timedelta(hours=2)).timestamp())})
    invoice = client.v1.invoices.retrieve(
        str(client.v1.subscriptions.retrieve(sub.id).latest_invoice))
    assert invoice.status == "paid"
    parts = {plan.base_lookup_key: "base", plan.overage_lookup_key: "overage"}
    stripe_lines = [InvoiceLine(plan.key, parts[str(sandbox.store.get(
        "price", line.pricing.price_details.price)["lookup_key"])], int(line.quantity or 0),  # type: ignore[arg-type]
        line.amount) for line in invoice.lines.data]
    ours = expected_lines(plan, None, [Segment(plan, T0, renewal, used)])
    assert compare(stripe_lines, ours) == ()
    assert invoice.total == sum(line.amount for line in ours)
