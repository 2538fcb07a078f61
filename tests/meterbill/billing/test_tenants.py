"""Tenant summaries and lists; views serialise to JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meterbill.bootstrap import Container
from meterbill.domain.errors import NotFound, StripeUnavailable
from stripe_sandbox import Sandbox

from ..conftest import make_container, make_settings


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
        database_url: str, sandbox: Sandbox, tmp_path: Path) -> None:
    # A policy whose reduced step allows a quarter of the rate limit.
    path = tmp_path / "dunning.toml"
    path.write_text('[[steps]]\nfailures = 1\nname = "slowed"\naccess = "reduced"\n'
                    'rate_limit_multiplier = 0.25\n')
    container = make_container(make_settings(database_url, dunning_policy_file=path), sandbox)
    try:
        tenant = container.customers.ensure_customer("slow", "me@slow.test", None)
        assert tenant.stripe_customer_id is not None
        container.subscriptions.create("slow", tenant.stripe_customer_id, "pro",
                                       payment_method_id="pm_card_visa")
        container.dunning.process_manual("slow", 1, 9900)
        summary = container.tenants.get("slow")
        entitlement = container.entitlement.get("slow")
        assert (summary.access, summary.rate_limit_multiplier) == ("reduced", 0.25)
        assert (entitlement.access, entitlement.rate_limit_multiplier) == ("reduced", 0.25)
        assert summary.reason == entitlement.reason == \
            "payment overdue: reduced access after 1 failed payment attempt (slowed)"
        assert summary.dunning_state == entitlement.dunning_state == "slowed"
        assert summary.tenant.api_access_enabled is True
    finally:
        container.close()
