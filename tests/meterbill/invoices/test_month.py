"""Invoice verification over a month of six tenants on one test clock (docs/invoice-
verification.md): clean renewals are verified and finalized untouched; four faults are each
held with the right difference; approve, correct and void end in the amounts the test expects;
a held invoice stays unpaid across a clock advance until someone acts, and is alerted again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from meterbill.adapters.db.notifications import BillingNotice
from meterbill.bootstrap import Container
from meterbill.domain.invoice_check import ReviewRules
from meterbill.services.invoices.verify import VerifyOptions

from .month import RENEWAL, START, Month, lookup

# Plans (src/meterbill/plans.toml): Starter $29 with 10,000 included then $0.001, Pro $99 with
# 100,000 included then $0.0008.
USAGE = {
    "t-clean-1": ("pro", 120_000),     # 9900 + 20,000 x 0.08c = 11500
    "t-clean-2": ("starter", 15_000),  # 2900 + 5,000 x 0.1c = 3400
    "t-double": ("pro", 125_000),      # plus 5,000 sent straight to Stripe's meter
    "t-noflush": ("starter", 10_000),  # plus 3,000 on the last day, never flushed
    "t-price": ("pro", 110_000),       # overage price changed in Stripe to 0.1c
    "t-dash": ("starter", 20_000),     # moved to Pro in the dashboard on Jan 10
}



def play_the_month(month: Month) -> None:
    client = month.client
    for tenant, (plan, total) in USAGE.items():
        month.subscribe(tenant, plan)
        month.usage(tenant, total, START + timedelta(minutes=7), RENEWAL - timedelta(hours=6))
    month.usage("t-noflush", 3_000, RENEWAL - timedelta(hours=23), RENEWAL - timedelta(hours=5),
                per_event=100)
    month.flush.skip.add(month.world.tenants["t-noflush"].customer_id)

    # A price changed in Stripe by hand: Pro's overage at 0.1c instead of 0.08c.
    plan = month.container.catalog.get("pro")
    pro = lookup(client, [plan.overage_lookup_key])[plan.overage_lookup_key]
    dearer = client.v1.prices.create(params={
        "product": str(pro.product), "currency": "usd", "billing_scheme": "tiered",
        "tiers_mode": "graduated", "recurring": {"interval": "month", "usage_type": "metered",
                                                 "meter": str(pro.recurring.meter)},
        "tiers": [{"up_to": 100_000, "unit_amount": 0},
                  {"up_to": "inf", "unit_amount_decimal": "0.1"}]})
    sub = client.v1.subscriptions.retrieve(month.world.tenants["t-price"].subscription_id)
    metered = next(i for i in sub["items"].data if i.price.recurring.usage_type == "metered")
    client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": metered.id, "price": dearer.id}], "proration_behavior": "none"})
    month.deliver()

    month.live_until(START + timedelta(days=9, hours=19))
    # A plan change made in the Stripe dashboard: Starter -> Pro, prorated.
    prices = lookup(client, [plan.base_lookup_key, plan.overage_lookup_key])
    sub = client.v1.subscriptions.retrieve(month.world.tenants["t-dash"].subscription_id)
    by_usage = {i.price.recurring.usage_type: i for i in sub["items"].data}
    client.v1.subscriptions.update(sub.id, params={
        "items": [{"id": by_usage["licensed"].id, "price": prices[plan.base_lookup_key].id},
                  {"id": by_usage["metered"].id, "price": prices[plan.overage_lookup_key].id}],
        "proration_behavior": "create_prorations"})
    month.deliver()

    month.live_until(RENEWAL - timedelta(days=10))
    # Double counting: 5,000 queries sent to Stripe's meter behind meterbill's back.
    client.v1.billing.meter_events.create(params={
        "event_name": "queries", "timestamp": int((RENEWAL - timedelta(days=12)).timestamp()),
        "payload": {"stripe_customer_id": month.world.tenants["t-double"].customer_id,
                    "value": "5000"}})

    # The renewals are drafted at midnight; meterbill hears of them at 00:30 (the loop's next
    # moment), flushes, checks, and holds what differs.
    month.live_until(RENEWAL + timedelta(minutes=30))


def test_a_month_clean_invoices_verified_faults_held_and_reviewed(month: Month,
                                                                  container: Container) -> None:
    play_the_month(month)
    review = container.invoice_review
    status = {item.tenant_id: item.status for item in review.list(status=None)}
    assert status == {"t-clean-1": "verified", "t-clean-2": "verified", "t-double": "held",
                      "t-noflush": "held", "t-price": "held", "t-dash": "held"}
    held = {item.tenant_id: item for item in review.list()}
    assert set(held) == {"t-double", "t-noflush", "t-price", "t-dash"}

    # Each fault held with the right difference (Stripe minus meterbill).
    double = held["t-double"]
    assert double.summary == ("t-double, Jan: Pro: Stripe 130,000 queries = $24.00 overage; "
                              "meterbill 125,000 = $20.00; +5,000")
    assert (double.stripe_total, double.expected_total) == (12300, 11900)
    noflush = held["t-noflush"]
    assert noflush.expected_total == 2900 + 300  # 13,000 queries: 3,000 over
    assert noflush.stripe_total == 2900 and noflush.difference == -300
    assert noflush.summary == ("t-noflush, Jan: Starter: Stripe 10,000 queries = $0.00 overage; "
                               "meterbill 13,000 = $3.00; -3,000")
    price = held["t-price"]
    assert price.summary == ("t-price, Jan: Pro: Stripe 110,000 queries = $10.00 overage; "
                             "meterbill 110,000 = $8.00; +$2.00")
    dash = held["t-dash"]
    assert "proration" in dash.summary and dash.reasons[0] == "numbers differ"
    assert any(line["proration"] for line in dash.stripe_lines)

    # Clean renewals were left to Stripe: finalized and charged untouched after the hour.
    month.advance(RENEWAL + timedelta(hours=2))
    assert month.charged("t-clean-1") == [9900, 11500]
    assert month.charged("t-clean-2") == [2900, 3400]
    for tenant in ("t-clean-1", "t-clean-2"):  # untouched: no update, no item from meterbill
        invoice = month.invoice(tenant)
        touched = [e for e in month.sandbox.store.all("event")
                   if e["type"] in ("invoice.updated", "invoiceitem.created")
                   and invoice.id in (e["data"]["object"].get("id"),
                                      e["data"]["object"].get("invoice"))]
        assert touched == [], tenant

    # Held invoices stay drafts, unpaid, however far the clock goes.
    month.live_until(RENEWAL + timedelta(days=2, hours=19))
    for tenant in held:
        invoice = month.invoice(tenant)
        assert (invoice.status, invoice.auto_advance, invoice.automatically_finalizes_at) == (
            "draft", False, None), tenant
        assert len(month.charged(tenant)) == 1, tenant  # the first invoice only

    # ... and alerted again while nobody acts.
    assert review.remind() == {"held": 4, "reminded": 4}
    assert review.remind() == {"held": 4, "reminded": 0}
    with container.db.session() as session:
        alerts = [n.dedupe_key for n in session.query(BillingNotice).filter(
            BillingNotice.kind == "admin_alert")]
    assert sum(key.startswith("invoice_held:") for key in alerts) == 8

    # Approve: Stripe's amount is charged.
    approved = review.approve(price.invoice_id, by="ops@example.com", reason="new price agreed")
    assert (approved.status, approved.decided_by) == ("approved", "ops@example.com")
    # Correct: an item for the difference; the charge is meterbill's total.
    corrected = review.correct(double.invoice_id, by="ops@example.com",
                               reason="5,000 test queries sent to Stripe by hand")
    assert corrected.correction_cents == -400 and corrected.correction_item_id
    # Void: nothing is charged.
    review.void(noflush.invoice_id, by="ops@example.com", reason="billed next month")
    month.deliver()

    assert month.charged("t-price") == [9900, 10900]
    assert month.charged("t-double") == [9900, 11900]
    fixed = month.invoice("t-double")
    assert [line.description for line in fixed.lines.data if line.amount == -400] == [
        "Usage correction for Jan 01 – Feb 01, 2026: a credit of $4.00 so this invoice "
        "matches the usage we recorded for you."]
    assert month.charged("t-noflush") == [2900]
    assert month.invoice("t-noflush").status == "void"

    figures = review.figures()
    assert figures.counts == {"verified": 2, "held": 1, "approved": 1, "corrected": 1,
                              "voided": 1, "unverified": 0}
    assert figures.verified_before_finalization == 1.0
    assert figures.amount_held == dash.stripe_total
    assert figures.median_review_seconds is not None and figures.median_review_seconds > 0

    # A decided invoice cannot be decided again.
    with pytest.raises(Exception, match="not held"):
        review.approve(price.invoice_id, by="ops@example.com", reason="again")


def test_rules_hold_drafts_whose_numbers_agree(month: Month, container: Container) -> None:
    container.invoice_verifier.options = VerifyOptions(
        rules=ReviewRules(first_invoice=True, amount_above_cents=20_000))
    month.subscribe("t-small", "starter")
    month.subscribe("t-big", "pro")
    month.usage("t-small", 12_000, START + timedelta(hours=1), RENEWAL - timedelta(days=1))
    month.usage("t-big", 400_000, START + timedelta(hours=1), RENEWAL - timedelta(days=1))
    month.live_until(RENEWAL + timedelta(minutes=30))
    held = {item.tenant_id: item for item in container.invoice_review.list()}
    assert {t: (i.reasons, i.difference) for t, i in held.items()} == {
        "t-small": (("first invoice of the tenant",), 0),
        "t-big": (("first invoice of the tenant", "amount $339.00 is above $200.00"), 0)}
    assert held["t-big"].summary == ("t-big, Pro, Jan: $339.00 as expected; held: first invoice "
                                     "of the tenant; amount $339.00 is above $200.00")
    container.invoice_review.approve(held["t-small"].invoice_id, by="ops", reason="looked fine")
    month.advance(RENEWAL + timedelta(hours=3))
    assert month.charged("t-small") == [2900, 3100]
    assert month.charged("t-big") == [9900]  # still held

    # The next month, only the amount rule still holds.
    month.usage("t-small", 12_000, RENEWAL + timedelta(hours=1),
                RENEWAL + timedelta(days=27))
    month.live_until(RENEWAL + timedelta(days=28, minutes=30))
    second = [i for i in container.invoice_review.list(status=None)
              if i.tenant_id == "t-small" and i.invoice_id != held["t-small"].invoice_id]
    assert [(i.status, i.reasons) for i in second] == [("verified", ())]


def test_a_hold_whose_numbers_catch_up_is_released_by_the_review_job(
        month: Month, container: Container) -> None:
    month.subscribe("t-late", "starter")
    month.subscribe("t-double", "pro")
    month.usage("t-late", 10_000, START + timedelta(hours=1), RENEWAL - timedelta(days=2))
    month.usage("t-late", 3_000, RENEWAL - timedelta(hours=23), RENEWAL - timedelta(hours=5),
                per_event=100)
    month.usage("t-double", 110_000, START + timedelta(hours=1), RENEWAL - timedelta(days=2))
    month.flush.skip.add(month.world.tenants["t-late"].customer_id)
    month.live_until(RENEWAL - timedelta(days=3))
    month.client.v1.billing.meter_events.create(params={
        "event_name": "queries", "timestamp": int((RENEWAL - timedelta(days=5)).timestamp()),
        "payload": {"stripe_customer_id": month.world.tenants["t-double"].customer_id,
                    "value": "5000"}})
    # Checked at 00:30 (t-late's last day missing in Stripe), then the daily sync sends it.
    month.live_until(RENEWAL + timedelta(minutes=30))
    assert {i.tenant_id for i in container.invoice_review.list()} == {"t-late", "t-double"}

    run = container.jobs.run("invoice-review")
    assert run.outcome == "ok", run
    assert run.counts == {"rechecked": 2, "released": 1, "held": 1, "reminded": 0}
    late = next(i for i in container.invoice_review.list(status=None) if i.tenant_id == "t-late")
    assert (late.status, late.decided_by) == ("verified", "meterbill (re-check)")
    assert late.decision_reason is not None and "-3,000" in late.decision_reason
    assert [i.tenant_id for i in container.invoice_review.list()] == ["t-double"]
    invoice = month.invoice("t-late")
    assert invoice.auto_advance is True and invoice.automatically_finalizes_at is not None
    month.advance(RENEWAL + timedelta(hours=3))
    assert month.charged("t-late") == [2900, 3200]  # 13,000 queries: 3,000 over
    assert month.charged("t-double") == [9900]  # still held
