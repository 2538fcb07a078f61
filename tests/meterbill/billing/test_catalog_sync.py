"""Catalog sync against the sandbox: create, then nothing to do, then a changed price."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import stripe

from meterbill.bootstrap import Container
from meterbill.config import Settings
from meterbill.domain.errors import StripeUnavailable
from meterbill.services.views import CatalogChange
from stripe_sandbox import Sandbox

from ..conftest import make_container

PLANS = Path(__file__).resolve().parents[3] / "src" / "meterbill" / "plans.toml"


@pytest.fixture
def fresh(settings: Settings, sandbox: Sandbox) -> Iterator[Container]:
    """A migrated container whose catalog was never synced."""
    container = make_container(settings, sandbox, sync=False)
    yield container
    container.close()


def _actions(changes: list[CatalogChange]) -> Counter[tuple[str, str]]:
    return Counter((c.kind, c.action) for c in changes)


def _stripe_counts(client: stripe.StripeClient) -> tuple[int, int, int]:
    return (len(client.v1.billing.meters.list().data), len(client.v1.products.list().data),
            len(client.v1.prices.list(params={"limit": 100}).data))


def test_dry_run_reports_everything_and_writes_nothing(
        fresh: Container, stripe_client: stripe.StripeClient) -> None:
    changes = fresh.catalog_sync.sync(dry_run=True)
    assert _actions(changes) == {("meter", "create"): 1, ("product", "create"): 3,
                                 ("price", "create"): 6}
    assert all(c.stripe_id is None for c in changes)
    assert _stripe_counts(stripe_client) == (0, 0, 0)


def test_first_sync_creates_the_catalog_and_second_changes_nothing(
        fresh: Container, stripe_client: stripe.StripeClient) -> None:
    first = fresh.catalog_sync.sync()
    assert _actions(first) == {("meter", "create"): 1, ("product", "create"): 3,
                               ("price", "create"): 6}
    assert _stripe_counts(stripe_client) == (1, 3, 6)

    meter = stripe_client.v1.billing.meters.list().data[0]
    assert meter.event_name == "queries"
    assert meter.default_aggregation.formula == "sum"
    prices = {p.lookup_key: p for p in stripe_client.v1.prices.list(
        params={"limit": 100, "expand": ["data.tiers"]}).data}
    base = prices["meterbill_starter_base_monthly"]
    assert (base.unit_amount, base.currency, base.recurring.interval,
            base.recurring.usage_type) == (2900, "usd", "month", "licensed")
    overage = prices["meterbill_pro_overage_monthly"]
    assert (overage.billing_scheme, overage.tiers_mode) == ("tiered", "graduated")
    assert overage.recurring.usage_type == "metered"
    assert overage.recurring.meter == meter.id
    assert overage.product == prices["meterbill_pro_base_monthly"].product != base.product
    tiers = [(t.up_to, t.unit_amount, Decimal(str(t.unit_amount_decimal or 0)))
             for t in overage.tiers]
    assert tiers == [(100_000, 0, Decimal(0)), (None, None, Decimal("0.08"))]
    product = stripe_client.v1.products.retrieve(base.product)
    assert (product.name, product.metadata["meterbill_plan"]) == ("Starter", "starter")

    second = fresh.catalog_sync.sync()
    assert {c.action for c in second} == {"unchanged"}
    assert len(second) == 10
    assert [c.stripe_id for c in second] == [c.stripe_id for c in first]
    assert _stripe_counts(stripe_client) == (1, 3, 6)
    assert fresh.catalog_sync.sync(dry_run=True) == second


def _plans_with(tmp_path: Path, old: str, new: str) -> Path:
    text = PLANS.read_text()
    assert old in text
    path = tmp_path / "changed-plans.toml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_changed_price_makes_a_new_price_and_moves_the_lookup_key(
        container: Container, sandbox: Sandbox, tmp_path: Path,
        stripe_client: stripe.StripeClient) -> None:
    before = container.gateway.prices_by_lookup_key(["meterbill_starter_base_monthly",
                                                     "meterbill_starter_overage_monthly"])
    plans = _plans_with(tmp_path, 'overage_unit_amount_cents = "0.1"',
                        'overage_unit_amount_cents = "0.12"')
    plans.write_text(plans.read_text().replace("monthly_base_cents = 2900",
                                               "monthly_base_cents = 3900"))
    changed = make_container(container.settings.model_copy(update={"plans_file": plans}),
                             sandbox, sync=False)
    try:
        preview = changed.catalog_sync.sync(dry_run=True)
        moved = [c for c in preview if c.action == "transfer_lookup_key"]
        assert sorted(c.lookup_key for c in moved) == ["meterbill_starter_base_monthly",
                                                       "meterbill_starter_overage_monthly"]
        assert "2900 -> 3900" in next(c.detail for c in moved if "base" in c.lookup_key)
        assert _stripe_counts(stripe_client)[2] == 6  # the dry run wrote nothing

        applied = changed.catalog_sync.sync()
        assert [c.lookup_key for c in applied if c.action == "transfer_lookup_key"] == [
            c.lookup_key for c in moved]
        assert _stripe_counts(stripe_client)[2] == 8
        after = changed.gateway.prices_by_lookup_key(["meterbill_starter_base_monthly",
                                                      "meterbill_starter_overage_monthly"])
        new_base = after["meterbill_starter_base_monthly"]
        assert new_base.id != before["meterbill_starter_base_monthly"].id
        assert new_base.unit_amount_decimal == Decimal(3900)
        assert after["meterbill_starter_overage_monthly"].tiers[1].unit_amount_decimal == \
            Decimal("0.12")
        old = stripe_client.v1.prices.retrieve(before["meterbill_starter_base_monthly"].id)
        assert old.lookup_key is None and old.unit_amount == 2900

        assert {c.action for c in changed.catalog_sync.sync()} == {"unchanged"}
    finally:
        changed.close()


def test_product_rename_updates_the_product_in_place(
        container: Container, sandbox: Sandbox, tmp_path: Path,
        stripe_client: stripe.StripeClient) -> None:
    plans = _plans_with(tmp_path, 'name = "Pro"', 'name = "Professional"')
    changed = make_container(container.settings.model_copy(update={"plans_file": plans}),
                             sandbox, sync=False)
    try:
        changes = changed.catalog_sync.sync()
        updates = [c for c in changes if c.action != "unchanged"]
        assert [(c.kind, c.action, c.lookup_key) for c in updates] == [
            ("product", "update", "meterbill_pro")]
        product = stripe_client.v1.products.retrieve(updates[0].stripe_id)
        assert product.name == "Professional"
        assert _stripe_counts(stripe_client) == (1, 3, 6)
    finally:
        changed.close()


def test_a_plan_without_included_units_uses_a_per_unit_price(
        settings: Settings, sandbox: Sandbox, tmp_path: Path,
        stripe_client: stripe.StripeClient) -> None:
    plans = tmp_path / "plans.toml"
    plans.write_text('[plans.payg]\nname = "Pay as you go"\nmonthly_base_cents = 0\n'
                     'included_quantity = 0\noverage_unit_amount_cents = "0.25"\n'
                     'annual_base_cents = 0\n')
    container = make_container(settings.model_copy(update={"plans_file": plans}), sandbox)
    try:
        prices = {p.lookup_key: p for p in stripe_client.v1.prices.list(
            params={"limit": 100}).data}
        assert sorted(prices) == ["meterbill_payg_base_monthly", "meterbill_payg_base_yearly",
                                  "meterbill_payg_overage_monthly",
                                  "meterbill_payg_overage_yearly"]
        metered = prices["meterbill_payg_overage_yearly"]
        assert metered.billing_scheme == "per_unit"
        assert Decimal(str(metered.unit_amount_decimal)) == Decimal("0.25")
        assert metered.recurring.interval == "year"
        assert {c.action for c in container.catalog_sync.sync()} == {"unchanged"}
    finally:
        container.close()


def test_stripe_down_is_reported_as_unavailable(
        stripe_down: tuple[Container, object]) -> None:
    broken, _ = stripe_down
    for dry_run in (True, False):
        with pytest.raises(StripeUnavailable) as caught:
            broken.catalog_sync.sync(dry_run=dry_run)
        assert "Could not reach Stripe" in caught.value.message
