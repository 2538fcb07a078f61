from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterbill.domain.errors import ConfigurationError, UnknownPlan
from meterbill.domain.plans import Catalog, Plan, load_catalog, parse_catalog


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog()


def test_packaged_catalog_has_the_missions_three_plans(catalog: Catalog) -> None:
    assert catalog.keys() == ("starter", "pro", "enterprise")
    starter, pro, enterprise = catalog.plans
    assert (starter.base_amount, starter.included_quantity, starter.overage_unit_amount) == (
        2900, 10_000, Decimal("0.1"))
    assert (pro.base_amount, pro.included_quantity, pro.overage_unit_amount) == (
        9900, 100_000, Decimal("0.08"))
    assert (enterprise.base_amount, enterprise.included_quantity,
            enterprise.overage_unit_amount) == (49900, 1_000_000, Decimal("0.05"))
    assert catalog.meter.event_name == "queries"
    assert all(p.meter_event_name == "queries" and p.currency == "usd" for p in catalog)


def test_unknown_plan_message_lists_valid_plans(catalog: Catalog) -> None:
    with pytest.raises(UnknownPlan) as caught:
        catalog.get("xyz")
    error = caught.value
    assert error.message == "Unknown plan type: xyz. Valid plans: starter, pro, enterprise"
    assert (error.status, error.field, error.code) == (400, "plan_type", "unknown_plan")


def test_lookup_keys(catalog: Catalog) -> None:
    starter = catalog.get("starter")
    assert starter.base_lookup_key == "meterbill_starter_base_monthly"
    assert starter.overage_lookup_key == "meterbill_starter_overage_monthly"
    assert catalog.plan_for_lookup_key("meterbill_pro_overage_monthly") == catalog.get("pro")
    assert catalog.plan_for_lookup_key("other") is None


@pytest.mark.parametrize("plan, quantity, cents", [
    ("starter", 0, 0), ("starter", 10_000, 0), ("starter", 10_001, 0),  # $0.001 rounds to 0
    ("starter", 10_005, 1),  # 0.5 cent rounds half up
    ("starter", 25_000, 1500),  # 15,000 x $0.001 = $15.00
    ("pro", 150_000, 4000),  # 50,000 x $0.0008 = $40.00
    ("enterprise", 3_000_000, 100_000),  # 2,000,000 x $0.0005 = $1,000.00
])
def test_overage_cost(catalog: Catalog, plan: str, quantity: int, cents: int) -> None:
    assert catalog.get(plan).overage_cost(quantity) == cents


def test_monthly_total_and_negative_quantity(catalog: Catalog) -> None:
    pro = catalog.get("pro")
    assert pro.monthly_total(150_000) == 9900 + 4000
    with pytest.raises(ValueError):
        pro.overage_cost(-1)


def test_monthly_prices_only_without_annual(catalog: Catalog) -> None:
    prices = catalog.get("starter").prices()
    assert [(p.lookup_key, p.usage_type, p.interval) for p in prices] == [
        ("meterbill_starter_base_monthly", "licensed", "month"),
        ("meterbill_starter_overage_monthly", "metered", "month"),
    ]
    assert prices[0].unit_amount == 2900
    assert (prices[1].included_quantity, prices[1].overage_unit_amount) == (10_000,
                                                                           Decimal("0.1"))
    assert len(catalog.price_definitions()) == 6


def _data(**plan: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "Team", "monthly_base_cents": 5000,
                            "included_quantity": 1000, "overage_unit_amount_cents": "0.2"}
    base.update(plan)
    return {"plans": {"team": {k: v for k, v in base.items() if v is not None}}}


def test_annual_price_adds_yearly_prices_with_twelve_months_included() -> None:
    plan = parse_catalog(_data(annual_base_cents=50000)).get("team")
    yearly = [p for p in plan.prices() if p.interval == "year"]
    assert [p.lookup_key for p in yearly] == ["meterbill_team_base_yearly",
                                              "meterbill_team_overage_yearly"]
    assert yearly[0].unit_amount == 50000
    assert yearly[1].included_quantity == 12_000


@pytest.mark.parametrize("change, message", [
    ({"monthly_base_cents": 29.0}, "monthly_base_cents must be a whole number"),
    ({"monthly_base_cents": -1}, "monthly_base_cents must be a whole number"),
    ({"overage_unit_amount_cents": 0.1}, "not float"),
    ({"overage_unit_amount_cents": "ten"}, "not a number"),
    ({"included_quantity": None}, "missing included_quantity"),
    ({"name": ""}, "name must be a non-empty string"),
    ({"currency": "USD"}, "currency must be a lower-case ISO code"),
    ({"colour": "red"}, "unknown field(s) ['colour']"),
])
def test_validation_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_catalog(_data(**change), source="my-plans.toml")
    assert message in caught.value.message
    assert "my-plans.toml: plans.team" in caught.value.message


def test_catalog_level_errors() -> None:
    with pytest.raises(ConfigurationError, match="no \\[plans.<key>\\] tables"):
        parse_catalog({})
    with pytest.raises(ConfigurationError, match="plan key must be lower-case"):
        parse_catalog({"plans": {"Bad-Key": _data()["plans"]["team"]}})
    plan = Plan("a", "A", 1, 1, Decimal(1))
    with pytest.raises(ConfigurationError, match="Duplicate plan keys"):
        Catalog(plans=(plan, plan))
    with pytest.raises(ConfigurationError, match="empty"):
        Catalog(plans=())


def test_load_catalog_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "plans.toml"
    path.write_text('[meter]\nevent_name = "tokens"\n[plans.solo]\nname = "Solo"\n'
                    'monthly_base_cents = 900\nincluded_quantity = 0\n'
                    'overage_unit_amount_cents = "0.002"\n')
    catalog = load_catalog(path)
    assert catalog.keys() == ("solo",)
    assert catalog.meter.event_name == "tokens"
    assert catalog.get("solo").meter_event_name == "tokens"


def test_load_catalog_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="Cannot read PLANS_FILE"):
        load_catalog(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[plans.x\n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_catalog(broken)
