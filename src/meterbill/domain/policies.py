"""Rules on plans and subscription statuses: plan-change direction, which statuses are live.

A tenant's access is decided in `access.py`.
"""

from __future__ import annotations

from typing import Literal

from .plans import Plan

Access = Literal["full", "reduced", "none"]
Direction = Literal["upgrade", "downgrade", "same"]

# Stripe subscription statuses, plus "none" for a tenant without a subscription and
# "suspended" for one the dunning policy suspended (its subscription is past_due or unpaid).
BILLING_STATUSES = ("none", "incomplete", "incomplete_expired", "trialing", "active",
                    "past_due", "canceled", "unpaid", "paused", "suspended")
# Statuses in which a subscription still exists and can change or be canceled.
LIVE_STATUSES = frozenset({"incomplete", "trialing", "active", "past_due", "unpaid", "paused",
                           "suspended"})


def plan_change_direction(current: Plan, target: Plan) -> Direction:
    """Upgrade or downgrade, judged by the monthly base price.

    Equal base prices compare by included quantity, then by overage price (cheaper overage is
    more generous), so every distinct pair of plans has a direction.
    """
    if current.key == target.key:
        return "same"
    ours = (current.base_amount, current.included_quantity, -current.overage_unit_amount)
    theirs = (target.base_amount, target.included_quantity, -target.overage_unit_amount)
    return "upgrade" if theirs >= ours else "downgrade"


def is_live(status: str) -> bool:
    return status in LIVE_STATUSES
