"""Tenant <-> Stripe customer mapping: created once, even under twenty concurrent calls."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import stripe
from sqlalchemy import func, select

from meterbill.adapters.db.models import Tenant
from meterbill.bootstrap import Container
from meterbill.domain.errors import InvalidInput, StripeUnavailable


def _tenant_rows(container: Container) -> int:
    with container.db.session() as session:
        return session.scalar(select(func.count()).select_from(Tenant)) or 0


def _customers(client: stripe.StripeClient, tenant_id: str) -> list[stripe.Customer]:
    return [c for c in client.v1.customers.list(params={"limit": 100}).data
            if c.metadata.to_dict().get("tenant_id") == tenant_id]


def test_creates_the_customer_once(container: Container,
                                   stripe_client: stripe.StripeClient) -> None:
    view = container.customers.ensure_customer("acme", "billing@acme.test", "Acme Inc")
    assert view.tenant_id == "acme" and view.stripe_customer_id
    assert (view.billing_status, view.api_access_enabled, view.current_plan) == (
        "none", False, None)
    customer = stripe_client.v1.customers.retrieve(view.stripe_customer_id)
    assert (customer.email, customer.name, customer.metadata["tenant_id"]) == (
        "billing@acme.test", "Acme Inc", "acme")

    again = container.customers.ensure_customer("acme", "billing@acme.test", "Acme Inc")
    assert again == view
    assert len(_customers(stripe_client, "acme")) == 1
    assert _tenant_rows(container) == 1


def test_finds_a_customer_that_stripe_already_has(container: Container,
                                                  stripe_client: stripe.StripeClient) -> None:
    # A customer made by an earlier run whose local write was lost.
    existing = stripe_client.v1.customers.create(
        params={"email": "old@beta.test", "metadata": {"tenant_id": "beta"}})
    view = container.customers.ensure_customer("beta", "new@beta.test", None)
    assert view.stripe_customer_id == existing.id
    assert len(_customers(stripe_client, "beta")) == 1


@pytest.mark.parametrize("search_lag", [False, True], ids=["search", "search-lags"])
def test_twenty_concurrent_calls_make_one_customer_and_one_row(
        container: Container, stripe_client: stripe.StripeClient,
        monkeypatch: pytest.MonkeyPatch, search_lag: bool) -> None:
    if search_lag:
        # Stripe's search index lags writes by up to a minute: only the idempotency key and
        # the unique tenant_id can keep the racers from making twins.
        monkeypatch.setattr(container.gateway, "search_customer_by_tenant", lambda _: None)
    start = threading.Barrier(20)

    def call(_: int) -> str:
        start.wait()
        view = container.customers.ensure_customer("race", "ops@race.test", "Race Co")
        assert view.stripe_customer_id is not None
        return view.stripe_customer_id

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = set(pool.map(call, range(20)))
    assert len(ids) == 1
    assert [c.id for c in _customers(stripe_client, "race")] == list(ids)
    assert _tenant_rows(container) == 1


@pytest.mark.parametrize("tenant_id, email, name, field", [
    ("", "a@b.test", None, "tenant_id"),
    ("has space", "a@b.test", None, "tenant_id"),
    ("x" * 129, "a@b.test", None, "tenant_id"),
    ("ok", "not-an-email", None, "email"),
    ("ok", "a@b.test", "n" * 257, "name"),
])
def test_bad_input_is_refused_before_anything_is_written(
        container: Container, stripe_client: stripe.StripeClient, tenant_id: str, email: str,
        name: str | None, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        container.customers.ensure_customer(tenant_id, email, name)
    assert caught.value.field == field and caught.value.status == 400
    assert _tenant_rows(container) == 0
    assert stripe_client.v1.customers.list().data == []


def test_stripe_down_writes_nothing(stripe_down: tuple[Container, object]) -> None:
    broken, down = stripe_down
    with pytest.raises(StripeUnavailable) as caught:
        broken.customers.ensure_customer("gamma", "a@gamma.test", None)
    assert caught.value.status == 503 and caught.value.retryable
    assert "Could not reach Stripe" in caught.value.message
    assert down.calls == 1  # type: ignore[attr-defined]
    assert _tenant_rows(broken) == 0
