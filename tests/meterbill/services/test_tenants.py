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
