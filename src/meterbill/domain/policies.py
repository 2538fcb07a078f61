"""Rules that turn billing facts into decisions: plan-change direction and tenant access.

Access follows the subscription's Stripe status (Kill Bill's idea of overdue states: each status
says what the tenant keeps), narrowed by the manual switches on the tenant row.
"""

from __future__ import annotations

from dataclasses import dataclass
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

_ACCESS: dict[str, Access] = {
    "trialing": "full",
    "active": "full",
    # The first payment is still being confirmed (3-D Secure, a slow bank): let them start.
    "incomplete": "reduced",
    # Stripe is retrying: the dunning policy narrows access step by step (soft_suspended,
    # then suspended), so a card that merely expired does not cut a customer off.
    "past_due": "full",
    "suspended": "none",
    "unpaid": "none",
    "paused": "none",
    "canceled": "none",
    "incomplete_expired": "none",
    "none": "none",
}
_RATE_LIMIT: dict[Access, float] = {"full": 1.0, "reduced": 0.5, "none": 0.0}


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


@dataclass(frozen=True)
class AccessDecision:
    access: Access
    rate_limit_multiplier: float
    reason: str

    @property
    def api_access_enabled(self) -> bool:
        return self.access != "none"


def access_for(
    billing_status: str, *, soft_suspended: bool = False, api_access_enabled: bool = True
) -> AccessDecision:
    """What a tenant may use given its subscription status and the manual switches."""
    if billing_status not in _ACCESS:
        raise ValueError(f"Unknown billing status {billing_status!r}; expected one of "
                         f"{', '.join(BILLING_STATUSES)}")
    if not api_access_enabled:
        return AccessDecision("none", 0.0, "API access disabled for this tenant")
    access = _ACCESS[billing_status]
    reason = ("suspended for non-payment" if billing_status == "suspended"
              else f"subscription {billing_status}")
    if soft_suspended and access == "full":
        access, reason = "reduced", "tenant soft-suspended"
    return AccessDecision(access, _RATE_LIMIT[access], reason)


def effective_access(billing_status: str, *, soft_suspended: bool, api_access_enabled: bool,
                     rate_limit_multiplier: float | None) -> AccessDecision:
    """What a tenant may use now: `access_for`, with the rate-limit multiplier recorded on the
    tenant (the dunning policy's, which may differ from `access_for`'s 0.5 for reduced access).
    A multiplier of zero means no access; below one, reduced."""
    decision = access_for(billing_status, soft_suspended=soft_suspended,
                          api_access_enabled=api_access_enabled)
    multiplier = float(rate_limit_multiplier or 0.0)
    if decision.access == "none" or multiplier <= 0.0:
        return AccessDecision("none", 0.0, decision.reason)
    if multiplier < 1.0:
        return AccessDecision("reduced", multiplier, decision.reason)
    return AccessDecision(decision.access, multiplier, decision.reason)


def is_live(status: str) -> bool:
    return status in LIVE_STATUSES
