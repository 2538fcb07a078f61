"""Tenant summaries and lists; views serialise to JSON."""

from __future__ import annotations

import json

import pytest

from meterbill.bootstrap import Container
from meterbill.domain.errors import NotFound, StripeUnavailable


def test_unknown_tenant_is_404(container: Container) -> None:
    with pytest.raises(NotFound) as caught:
        container.tenants.get("ghost")
    assert caught.value.status == 404 and caught.value.field == "tenant_id"
    assert "Unknown tenant: ghost" in caught.value.message


def test_summary_of_a_tenant_without_subscription(container: Container) -> None:
    container.customers.ensure_customer("solo", "me@solo.test", "Solo")
    summary = container.tenants.get("solo")
    assert (summary.plan, summary.status, summary.access, summary.rate_limit_multiplier) == (
        None, "none", "none", 0.0)
    assert summary.payment_method_on_file is False
    assert summary.subscription_id is None and summary.current_period_end is None
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["tenant"]["tenant_id"] == "solo"
    assert data["tenant"]["created_at"].endswith("+00:00")


def test_list_in_creation_order(container: Container) -> None:
    assert container.tenants.list() == []
    for tenant_id in ("b-tenant", "a-tenant", "c-tenant"):
        container.customers.ensure_customer(tenant_id, f"x@{tenant_id}.test", None)
    assert [t.tenant_id for t in container.tenants.list()] == ["b-tenant", "a-tenant",
                                                               "c-tenant"]


def test_summary_needs_stripe_for_the_payment_method(
        container: Container, stripe_down: tuple[Container, object]) -> None:
    container.customers.ensure_customer("solo", "me@solo.test", None)
    broken, _ = stripe_down
    with pytest.raises(StripeUnavailable):
        broken.tenants.get("solo")
    assert [t.tenant_id for t in broken.tenants.list()] == ["solo"]  # the list is local only


def test_summary_reports_the_dunning_policy_multiplier_as_entitlement_does(
        container: Container) -> None:
    from sqlalchemy import update

    from meterbill.adapters.db.models import Tenant

    container.customers.ensure_customer("slow", "me@slow.test", None)
    with container.db.session() as session:  # as a final warning with a 0.25 policy leaves it
        session.execute(update(Tenant).where(Tenant.tenant_id == "slow").values(
            billing_status="past_due", soft_suspended=True, api_access_enabled=True,
            rate_limit_multiplier=0.25))
    summary = container.tenants.get("slow")
    entitlement = container.entitlement.get("slow")
    assert (summary.access, summary.rate_limit_multiplier) == ("reduced", 0.25)
    assert (entitlement.access, entitlement.rate_limit_multiplier) == ("reduced", 0.25)
