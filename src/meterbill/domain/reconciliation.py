"""Where meterbill's copy of a subscription and Stripe's disagree: `compare`. Pure.

Stripe is the source of truth: a drift names what differs, our value and Stripe's, and the
subscription and tenant it is about. The service (services/reconcile/subscriptions.py) reads
both sides, calls this and corrects our side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

_ENDED = frozenset({"canceled", "incomplete_expired"})


@dataclass(frozen=True)
class LocalSubscription:
    """Our row of a subscription, with its tenant's link to Stripe."""

    id: str
    tenant_id: str
    status: str
    plan: str | None
    cancel_at_period_end: bool
    period: tuple[datetime | None, datetime | None]
    trial_end: datetime | None
    payment_method_on_file: bool | None  # None: never asked, nothing to compare
    tenant_customer_id: str | None  # the tenant's Stripe customer (None: link cleared)


@dataclass(frozen=True)
class RemoteSubscription:
    """Stripe's subscription as the list returns it, its customer expanded."""

    id: str
    customer_id: str
    customer_deleted: bool
    status: str
    plan: str | None  # the catalog plan its prices' lookup keys name
    cancel_at_period_end: bool
    period: tuple[datetime | None, datetime | None]
    trial_end: datetime | None
    payment_method_on_file: bool  # a default payment method on the subscription or customer

    @property
    def live(self) -> bool:
        return self.status not in _ENDED


@dataclass(frozen=True)
class Drift:
    kind: str
    subscription_id: str | None
    tenant_id: str | None
    local: str
    stripe: str

    @property
    def fingerprint(self) -> str:
        """Names this drift across runs: the same disagreement is recorded and alerted once."""
        return f"{self.kind}:{self.subscription_id or self.tenant_id}:{self.stripe}"[:255]


def _text(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return " → ".join(_text(v) for v in value)
    return str(value)


def compare(local: LocalSubscription, remote: RemoteSubscription) -> list[Drift]:
    """Every field of `local` that differs from `remote` (the same subscription)."""
    pairs: list[tuple[str, object, object]] = [
        ("status", local.status, remote.status),
        ("cancel_at_period_end", local.cancel_at_period_end, remote.cancel_at_period_end),
        ("period", local.period, remote.period),
        ("trial_end", local.trial_end, remote.trial_end),
    ]
    if remote.plan is not None:  # a price outside the catalog says nothing about the plan
        pairs.insert(1, ("plan", local.plan, remote.plan))
    if local.payment_method_on_file is not None and remote.live:
        pairs.append(("payment_method", local.payment_method_on_file,
                      remote.payment_method_on_file))
    drifts = [Drift(kind, remote.id, local.tenant_id, _text(ours), _text(theirs))
              for kind, ours, theirs in pairs if ours != theirs]
    if remote.customer_deleted and local.tenant_customer_id == remote.customer_id:
        drifts.append(Drift("customer_deleted", remote.id, local.tenant_id,
                            remote.customer_id, "deleted"))
    return drifts


def missing(local: LocalSubscription) -> Drift | None:
    """A tenant's subscription that Stripe's list (every status) does not have."""
    if local.status in _ENDED:
        return None  # already ended here: nothing left to correct
    return Drift("subscription_missing", local.id, local.tenant_id, local.status, "absent")


def unknown(remote: RemoteSubscription, tenant_id: str | None) -> Drift | None:
    """A live Stripe subscription meterbill has no row of (made in the dashboard, or by a
    customer meterbill does not know)."""
    if not remote.live:
        return None
    return Drift("unknown_subscription", remote.id, tenant_id, "absent",
                 f"{remote.status} for {remote.customer_id}")
