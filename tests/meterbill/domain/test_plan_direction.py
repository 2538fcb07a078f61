from __future__ import annotations

from decimal import Decimal

from meterbill.domain.plans import Plan, load_catalog, plan_change_direction


def test_plan_direction_by_base_price() -> None:
    catalog = load_catalog()
    starter, pro, enterprise = catalog.plans
    assert plan_change_direction(starter, pro) == "upgrade"
    assert plan_change_direction(enterprise, starter) == "downgrade"
    assert plan_change_direction(pro, enterprise) == "upgrade"
    assert plan_change_direction(pro, pro) == "same"


def test_plan_direction_ties_break_on_what_is_included() -> None:
    small = Plan("small", "Small", 1000, 100, Decimal("1"))
    large = Plan("large", "Large", 1000, 500, Decimal("1"))
    cheap_overage = Plan("cheap", "Cheap", 1000, 100, Decimal("0.5"))
    assert plan_change_direction(small, large) == "upgrade"
    assert plan_change_direction(large, small) == "downgrade"
    assert plan_change_direction(small, cheap_overage) == "upgrade"
    assert plan_change_direction(cheap_overage, small) == "downgrade"
