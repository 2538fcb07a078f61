from __future__ import annotations

from decimal import Decimal

import pytest

from meterbill.domain.plans import Plan, load_catalog
from meterbill.domain.policies import (
    BILLING_STATUSES,
    access_for,
    effective_access,
    is_live,
    plan_change_direction,
)


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


@pytest.mark.parametrize("status, access, multiplier", [
    ("active", "full", 1.0), ("trialing", "full", 1.0), ("past_due", "full", 1.0),
    ("incomplete", "reduced", 0.5), ("unpaid", "none", 0.0), ("canceled", "none", 0.0),
    ("incomplete_expired", "none", 0.0), ("paused", "none", 0.0), ("none", "none", 0.0),
    ("suspended", "none", 0.0),
])
def test_access_follows_billing_status(status: str, access: str, multiplier: float) -> None:
    decision = access_for(status)
    assert (decision.access, decision.rate_limit_multiplier) == (access, multiplier)
    assert decision.api_access_enabled is (access != "none")


def test_manual_switches_narrow_access() -> None:
    assert access_for("active", soft_suspended=True).access == "reduced"
    assert access_for("past_due", soft_suspended=True).access == "reduced"
    assert access_for("active", api_access_enabled=False).access == "none"


def test_every_status_has_a_rule_and_unknown_is_refused() -> None:
    for status in BILLING_STATUSES:
        access_for(status)
    with pytest.raises(ValueError, match="Unknown billing status"):
        access_for("weird")


def test_live_statuses() -> None:
    assert is_live("active") and is_live("past_due") and is_live("trialing")
    assert not is_live("canceled") and not is_live("incomplete_expired") and not is_live("none")


@pytest.mark.parametrize(("status", "soft", "enabled", "stored", "access", "multiplier"), [
    ("past_due", True, True, 0.25, "reduced", 0.25),  # the dunning policy's multiplier
    ("active", False, True, 1.0, "full", 1.0),
    ("active", False, True, 0.0, "none", 0.0),  # nothing recorded yet: no access
    ("active", False, True, None, "none", 0.0),
    ("suspended", False, True, 0.5, "none", 0.0),  # the status decides first
    ("active", False, False, 1.0, "none", 0.0),  # the manual switch too
])
def test_effective_access_uses_the_recorded_multiplier(
        status: str, soft: bool, enabled: bool, stored: float | None, access: str,
        multiplier: float) -> None:
    decision = effective_access(status, soft_suspended=soft, api_access_enabled=enabled,
                                rate_limit_multiplier=stored)
    assert (decision.access, decision.rate_limit_multiplier) == (access, multiplier)
