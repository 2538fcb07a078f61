"""Subscription lifecycle against the sandbox: create, payment-method policy, cancel, resume,
plan changes, and failures that must leave nothing behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import stripe
from sqlalchemy import func, select

from meterbill.adapters.db.models import Subscription, Tenant
from meterbill.bootstrap import Container
from meterbill.domain.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PaymentMethodRequired,
    StripeCardError,
    StripeUnavailable,
    UnknownPlan,
)
from meterbill.services.billing.subscriptions import SubscriptionPolicy
from meterbill.services.views import TenantView
from stripe_sandbox import Sandbox

from ..conftest import make_container


@pytest.fixture
def tenant(container: Container) -> TenantView:
    return container.customers.ensure_customer("acme", "billing@acme.test", "Acme")


def _customer_id(tenant: TenantView) -> str:
    assert tenant.stripe_customer_id is not None
    return tenant.stripe_customer_id


def _stripe_subscriptions(client: stripe.StripeClient) -> list[stripe.Subscription]:
    return list(client.v1.subscriptions.list(params={"status": "all", "limit": 100}).data)


def _local(container: Container) -> tuple[int, Tenant]:
    with container.db.session() as session:
        count = session.scalar(select(func.count()).select_from(Subscription)) or 0
        row = session.scalars(select(Tenant).where(Tenant.tenant_id == "acme")).one()
        return count, row


def _price_keys(client: stripe.StripeClient, subscription_id: str) -> list[str]:
    sub = client.v1.subscriptions.retrieve(subscription_id)
    return sorted(item.price.lookup_key or item.price.id for item in sub["items"].data)


def _assert_nothing_written(container: Container, client: stripe.StripeClient) -> None:
    count, row = _local(container)
    assert count == 0
    assert (row.stripe_subscription_id, row.current_plan, row.billing_status,
            row.api_access_enabled) == (None, None, "none", False)
    assert _stripe_subscriptions(client) == []


# --- create ----------------------------------------------------------------------------------


def test_create_with_a_payment_method(container: Container, tenant: TenantView,
                                      stripe_client: stripe.StripeClient) -> None:
    before = datetime.now(UTC)
    view = container.subscriptions.create("acme", _customer_id(tenant), "pro",
                                          payment_method_id="pm_card_visa")
    assert (view.tenant_id, view.customer_id, view.plan_type) == ("acme", tenant.stripe_customer_id,
                                                                   "pro")
    assert view.status == "trialing" and len(view.items) == 2
    assert view.trial_end is not None
    assert timedelta(days=13) < view.trial_end - before <= timedelta(days=14, minutes=1)
    assert view.current_period_start is not None and view.current_period_end is not None

    sub = stripe_client.v1.subscriptions.retrieve(view.id)
    assert sub.status == "trialing" and sub.customer == tenant.stripe_customer_id
    assert sub.metadata.to_dict() == {"tenant_id": "acme", "plan_type": "pro"}
    assert _price_keys(stripe_client, view.id) == ["meterbill_pro_base_monthly",
                                                   "meterbill_pro_overage_monthly"]
    customer = stripe_client.v1.customers.retrieve(_customer_id(tenant))
    pm = customer.invoice_settings.default_payment_method
    assert pm and pm.startswith("pm_") and pm != "pm_card_visa"
    assert sub.default_payment_method == pm

    _, row = _local(container)
    assert (row.stripe_subscription_id, row.current_plan, row.billing_status,
            row.api_access_enabled, row.rate_limit_multiplier) == (view.id, "pro", "trialing",
                                                                    True, 1.0)
    summary = container.tenants.get("acme")
    assert (summary.plan, summary.status, summary.access, summary.payment_method_on_file) == (
        "pro", "trialing", "full", True)
    assert summary.trial_end == view.trial_end
    assert summary.to_dict()["tenant"]["tenant_id"] == "acme"


def test_missing_payment_method_is_refused_with_422(container: Container, tenant: TenantView,
                                                     stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(PaymentMethodRequired) as caught:
        container.subscriptions.create("acme", _customer_id(tenant), "starter")
    assert caught.value.status == 422 and caught.value.field == "payment_method_id"
    assert "payment_method_id" in caught.value.message
    _assert_nothing_written(container, stripe_client)


def test_a_card_already_on_the_customer_satisfies_the_policy(
        container: Container, tenant: TenantView, stripe_client: stripe.StripeClient) -> None:
    pm = stripe_client.v1.payment_methods.attach(
        "pm_card_mastercard", params={"customer": _customer_id(tenant)})
    view = container.subscriptions.create("acme", _customer_id(tenant), "starter")
    assert stripe_client.v1.subscriptions.retrieve(view.id).default_payment_method == pm.id
    assert container.tenants.get("acme").payment_method_on_file is True


def test_without_the_policy_a_trial_starts_without_a_card(
        settings: object, sandbox: Sandbox, stripe_client: stripe.StripeClient) -> None:
    relaxed = make_container(settings.model_copy(  # type: ignore[attr-defined]
        update={"require_payment_method": False}), sandbox)
    try:
        tenant = relaxed.customers.ensure_customer("acme", "billing@acme.test", None)
        view = relaxed.subscriptions.create("acme", _customer_id(tenant), "starter",
                                            trial_days=7)
        assert view.status == "trialing"
        assert stripe_client.v1.subscriptions.retrieve(view.id).default_payment_method is None
        summary = relaxed.tenants.get("acme")
        assert (summary.payment_method_on_file, summary.access) == (False, "full")
    finally:
        relaxed.close()


def test_no_trial_is_charged_at_creation(container: Container, tenant: TenantView,
                                         stripe_client: stripe.StripeClient) -> None:
    view = container.subscriptions.create("acme", _customer_id(tenant), "starter", trial_days=0,
                                          payment_method_id="pm_card_visa")
    sub = stripe_client.v1.subscriptions.retrieve(view.id)
    assert view.status == sub.status == "active"
    assert view.trial_end is None and view.next_action is None
    assert view.latest_invoice == sub.latest_invoice and view.latest_invoice is not None
    assert stripe_client.v1.invoices.retrieve(view.latest_invoice).status == "paid"


def test_unknown_plan(container: Container, tenant: TenantView,
                      stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(UnknownPlan) as caught:
        container.subscriptions.create("acme", _customer_id(tenant), "xyz",
                                       payment_method_id="pm_card_visa")
    assert str(caught.value) == "Unknown plan type: xyz. Valid plans: starter, pro, enterprise"
    _assert_nothing_written(container, stripe_client)
    assert stripe_client.v1.customers.retrieve(
        _customer_id(tenant)).invoice_settings.default_payment_method is None


@pytest.mark.parametrize("tenant_id, customer, field, error", [
    ("nobody", None, "tenant_id", NotFound),
    ("acme", "cus_someoneelse", "customer_id", InvalidInput),
])
def test_unknown_tenant_or_foreign_customer(
        container: Container, tenant: TenantView, stripe_client: stripe.StripeClient,
        tenant_id: str, customer: str | None, field: str, error: type) -> None:
    with pytest.raises(error) as caught:
        container.subscriptions.create(tenant_id, customer or _customer_id(tenant), "pro",
                                       payment_method_id="pm_card_visa")
    assert caught.value.field == field
    _assert_nothing_written(container, stripe_client)


@pytest.mark.parametrize("trial_days", [-1, 731])
def test_bad_trial_days(container: Container, tenant: TenantView,
                        stripe_client: stripe.StripeClient, trial_days: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        container.subscriptions.create("acme", _customer_id(tenant), "pro", trial_days=trial_days,
                                       payment_method_id="pm_card_visa")
    assert caught.value.field == "trial_days"
    _assert_nothing_written(container, stripe_client)


def test_declined_card_is_a_402_and_nothing_is_written(
        container: Container, tenant: TenantView, stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(StripeCardError) as caught:
        container.subscriptions.create("acme", _customer_id(tenant), "pro",
                                       payment_method_id="pm_card_chargeDeclined")
    assert caught.value.status == 402
    assert caught.value.details["stripe_request_id"].startswith("req_")
    _assert_nothing_written(container, stripe_client)


def test_unknown_payment_method_is_bad_input(container: Container, tenant: TenantView,
                                             stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(InvalidInput) as caught:
        container.subscriptions.create("acme", _customer_id(tenant), "pro",
                                       payment_method_id="pm_doesnotexist")
    assert caught.value.field == "payment_method_id" and caught.value.status == 400
    _assert_nothing_written(container, stripe_client)


def test_a_second_live_subscription_is_a_conflict(container: Container, tenant: TenantView,
                                                  stripe_client: stripe.StripeClient) -> None:
    first = container.subscriptions.create("acme", _customer_id(tenant), "pro",
                                           payment_method_id="pm_card_visa")
    with pytest.raises(Conflict) as caught:
        container.subscriptions.create("acme", _customer_id(tenant), "starter")
    assert first.id in caught.value.message
    assert [s.id for s in _stripe_subscriptions(stripe_client)] == [first.id]


def test_concurrent_identical_creates_make_one_subscription(
        container: Container, tenant: TenantView, stripe_client: stripe.StripeClient) -> None:
    container.subscriptions.policy = SubscriptionPolicy(require_payment_method=False)
    start = threading.Barrier(8)

    def call(_: int) -> str:
        start.wait()
        try:
            return container.subscriptions.create("acme", _customer_id(tenant), "pro").id
        except Conflict:  # a racer that saw the winner's row already: refused, not duplicated
            return "conflict"

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = set(pool.map(call, range(8)))
    live = [s for s in _stripe_subscriptions(stripe_client) if s.status != "canceled"]
    assert len(live) == 1
    assert results - {"conflict"} == {live[0].id}
    count, row = _local(container)
    assert row.stripe_subscription_id == live[0].id
    with container.db.session() as session:
        ids = session.scalars(select(Subscription.id)).all()
    # Rows exist only for subscriptions Stripe created; at most the one live one is current.
    assert set(ids) <= {s.id for s in _stripe_subscriptions(stripe_client)}


def test_stripe_down_creates_nothing(
        stripe_down: tuple[Container, object], tenant: TenantView,
        stripe_client: stripe.StripeClient) -> None:
    broken, _ = stripe_down
    with pytest.raises(StripeUnavailable) as caught:
        broken.subscriptions.create("acme", _customer_id(tenant), "pro",
                                    payment_method_id="pm_card_visa")
    assert caught.value.status == 503
    _assert_nothing_written(broken, stripe_client)


# --- cancel and resume -----------------------------------------------------------------------


@pytest.fixture
def subscribed(container: Container, tenant: TenantView) -> Iterator[str]:
    yield container.subscriptions.create("acme", _customer_id(tenant), "pro",
                                         payment_method_id="pm_card_visa").id


def test_cancel_at_period_end_then_resume(container: Container, subscribed: str,
                                          stripe_client: stripe.StripeClient) -> None:
    view = container.subscriptions.cancel(subscribed)
    assert view.cancel_at_period_end is True and view.status == "trialing"
    assert stripe_client.v1.subscriptions.retrieve(subscribed).cancel_at_period_end is True
    assert container.tenants.get("acme").cancel_at_period_end is True
    assert container.subscriptions.cancel(subscribed).cancel_at_period_end is True  # idempotent

    resumed = container.subscriptions.resume(subscribed)
    assert resumed.cancel_at_period_end is False
    assert stripe_client.v1.subscriptions.retrieve(subscribed).cancel_at_period_end is False
    # Cancel -> resume -> cancel again must really cancel (no stale idempotent replay).
    assert container.subscriptions.cancel(subscribed).cancel_at_period_end is True
    assert stripe_client.v1.subscriptions.retrieve(subscribed).cancel_at_period_end is True


def test_cancel_now(container: Container, subscribed: str,
                   stripe_client: stripe.StripeClient) -> None:
    view = container.subscriptions.cancel(subscribed, at_period_end=False)
    assert view.status == "canceled"
    assert stripe_client.v1.subscriptions.retrieve(subscribed).status == "canceled"
    _, row = _local(container)
    assert (row.billing_status, row.api_access_enabled) == ("canceled", False)
    assert container.tenants.get("acme").access == "none"
    with pytest.raises(Conflict):
        container.subscriptions.cancel(subscribed)
    with pytest.raises(Conflict, match="cannot be resumed"):
        container.subscriptions.resume(subscribed)


def test_a_new_subscription_after_cancel(container: Container, subscribed: str,
                                         tenant: TenantView) -> None:
    container.subscriptions.cancel(subscribed, at_period_end=False)
    again = container.subscriptions.create("acme", _customer_id(tenant), "pro")
    assert again.id != subscribed
    _, row = _local(container)
    assert (row.stripe_subscription_id, row.billing_status) == (again.id, "trialing")


def test_unknown_subscription(container: Container) -> None:
    for call in (lambda: container.subscriptions.cancel("sub_nope"),
                 lambda: container.subscriptions.resume("sub_nope"),
                 lambda: container.subscriptions.change_plan("sub_nope", "pro")):
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.status == 404


# --- plan changes ----------------------------------------------------------------------------


def test_upgrade_takes_effect_now(container: Container, subscribed: str,
                                  stripe_client: stripe.StripeClient) -> None:
    items_before = {i.id for i in stripe_client.v1.subscriptions.retrieve(subscribed)[
        "items"].data}
    change = container.subscriptions.change_plan(subscribed, "enterprise")
    assert (change.effective, change.from_plan, change.to_plan) == ("now", "pro", "enterprise")
    assert change.subscription.plan_type == "enterprise"
    assert _price_keys(stripe_client, subscribed) == ["meterbill_enterprise_base_monthly",
                                                      "meterbill_enterprise_overage_monthly"]
    sub = stripe_client.v1.subscriptions.retrieve(subscribed)
    assert {i.id for i in sub["items"].data} == items_before  # the same items, new prices
    assert sub.metadata["plan_type"] == "enterprise"
    _, row = _local(container)
    assert row.current_plan == "enterprise"


def test_upgrade_of_a_paid_subscription_is_invoiced_at_once(
        container: Container, tenant: TenantView, stripe_client: stripe.StripeClient) -> None:
    view = container.subscriptions.create("acme", _customer_id(tenant), "starter",
                                          trial_days=0, payment_method_id="pm_card_visa")
    assert view.status == "active"  # the first invoice was charged at creation
    assert view.latest_invoice is not None

    change = container.subscriptions.change_plan(view.id, "pro")
    assert (change.effective, change.subscription.status) == ("now", "active")
    assert change.proration_invoice is not None and change.proration_invoice != view.latest_invoice
    invoice = stripe_client.v1.invoices.retrieve(change.proration_invoice)
    # always_invoice: the difference for the rest of the period ($99 - $29 = $70, prorated).
    assert 7000 - 100 <= invoice.amount_due <= 7000
    _, row = _local(container)
    assert (row.current_plan, row.billing_status, row.api_access_enabled) == ("pro", "active",
                                                                              True)


def test_downgrade_waits_for_the_period_end(container: Container, subscribed: str,
                                            stripe_client: stripe.StripeClient) -> None:
    change = container.subscriptions.change_plan(subscribed, "starter")
    assert (change.effective, change.from_plan, change.to_plan) == ("period_end", "pro",
                                                                   "starter")
    assert change.subscription.pending_plan == "starter"
    assert change.subscription.plan_type == "pro"
    assert _price_keys(stripe_client, subscribed) == ["meterbill_pro_base_monthly",
                                                      "meterbill_pro_overage_monthly"]
    assert container.tenants.get("acme").pending_plan == "starter"
    schedule_id = stripe_client.v1.subscriptions.retrieve(subscribed).schedule
    schedule = stripe_client.v1.subscription_schedules.retrieve(schedule_id)
    assert (schedule.status, schedule.end_behavior) == ("active", "release")
    assert sorted(stripe_client.v1.prices.retrieve(i.price).lookup_key
                  for i in schedule.phases[1]["items"]) == [
        "meterbill_starter_base_monthly", "meterbill_starter_overage_monthly"]


def test_choosing_the_current_plan_drops_a_pending_downgrade(container: Container,
                                                            subscribed: str) -> None:
    with pytest.raises(Conflict, match="already on plan pro"):
        container.subscriptions.change_plan(subscribed, "pro")
    container.subscriptions.change_plan(subscribed, "starter")
    kept = container.subscriptions.change_plan(subscribed, "pro")
    assert (kept.effective, kept.to_plan, kept.subscription.pending_plan) == ("now", "pro", None)
    assert container.gateway.retrieve_subscription(subscribed).schedule_id is None
    with pytest.raises(Conflict, match="no pending plan change"):
        container.subscriptions.cancel_pending_change(subscribed)


def test_downgrade_now_when_configured(settings: object, sandbox: Sandbox,
                                       stripe_client: stripe.StripeClient) -> None:
    eager = make_container(settings.model_copy(  # type: ignore[attr-defined]
        update={"downgrade_at_period_end": False}), sandbox)
    try:
        tenant = eager.customers.ensure_customer("acme", "billing@acme.test", None)
        sub = eager.subscriptions.create("acme", _customer_id(tenant), "enterprise",
                                         payment_method_id="pm_card_visa")
        change = eager.subscriptions.change_plan(sub.id, "starter")
        assert change.effective == "now"
        assert _price_keys(stripe_client, sub.id) == ["meterbill_starter_base_monthly",
                                                      "meterbill_starter_overage_monthly"]
    finally:
        eager.close()


def test_change_plan_refusals(container: Container, subscribed: str) -> None:
    with pytest.raises(UnknownPlan):
        container.subscriptions.change_plan(subscribed, "gold")
    container.subscriptions.cancel(subscribed)
    with pytest.raises(Conflict, match="resume it"):
        container.subscriptions.change_plan(subscribed, "enterprise")
    container.subscriptions.cancel(subscribed, at_period_end=False)
    with pytest.raises(Conflict, match="canceled"):
        container.subscriptions.change_plan(subscribed, "enterprise")


def test_a_catalog_price_change_leaves_existing_subscriptions_alone(
        container: Container, subscribed: str, sandbox: Sandbox, tmp_path: Path,
        stripe_client: stripe.StripeClient) -> None:
    old_ids = sorted(i.price.id for i in stripe_client.v1.subscriptions.retrieve(subscribed)[
        "items"].data)
    plans = tmp_path / "plans.toml"
    source = Path(__file__).resolve().parents[3] / "src" / "meterbill" / "plans.toml"
    plans.write_text(source.read_text().replace("monthly_base_cents = 9900",
                                                "monthly_base_cents = 10900"))
    repriced = make_container(container.settings.model_copy(update={"plans_file": plans}),
                              sandbox)
    try:
        sub = stripe_client.v1.subscriptions.retrieve(subscribed)
        assert sorted(i.price.id for i in sub["items"].data) == old_ids
        # The old base price lost its lookup key to the new one but still bills this customer.
        assert [stripe_client.v1.prices.retrieve(p).lookup_key for p in old_ids].count(None) == 1
        tenant = repriced.customers.ensure_customer("beta", "b@beta.test", None)
        new = repriced.subscriptions.create("beta", _customer_id(tenant), "pro",
                                            payment_method_id="pm_card_visa")
        new_base = next(i.price for i in stripe_client.v1.subscriptions.retrieve(new.id)[
            "items"].data if i.price.lookup_key == "meterbill_pro_base_monthly")
        assert new_base.unit_amount == 10900
    finally:
        repriced.close()
