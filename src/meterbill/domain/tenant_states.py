"""The states an operator sorts tenants by, from the two columns the access writer keeps.

`billing_status` is Stripe's subscription status, or `suspended` while the dunning policy takes
all access; `soft_suspended` marks the step before. Every other Stripe status (incomplete,
unpaid, incomplete_expired) and a tenant without a subscription (`none`) count as `other`.
"""

from __future__ import annotations

STATES = ("trialing", "active", "past_due", "soft_suspended", "suspended", "canceled", "other")
LABELS = {"trialing": "Trialing", "active": "Active", "past_due": "Past due",
          "soft_suspended": "Soft-suspended", "suspended": "Suspended",
          "canceled": "Canceled", "other": "Other"}
_PLAIN = frozenset({"trialing", "active", "past_due", "canceled"})


def tenant_state(billing_status: str, soft_suspended: bool) -> str:
    """The operator's state of a tenant (one of `STATES`)."""
    if billing_status == "suspended":
        return "suspended"
    if soft_suspended:
        return "soft_suspended"
    return billing_status if billing_status in _PLAIN else "other"


def parse_state(value: str | None) -> str | None:
    """A state filter from a query string: None for all; ValueError naming the choices."""
    if not value:
        return None
    if value not in STATES:
        raise ValueError(f"Unknown state {value!r}. Choose one of: {', '.join(STATES)}.")
    return value
