"""What services return: frozen, plain dataclasses (never ORM rows or Stripe objects).

`to_dict()` gives a JSON-ready dict (datetimes as ISO 8601 strings in UTC).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

Access = Literal["full", "reduced", "none"]
ChangeAction = Literal["create", "update", "transfer_lookup_key", "unchanged"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


class _View:
    def to_dict(self) -> dict[str, Any]:
        result = _jsonable(self)
        assert isinstance(result, dict)
        return result


@dataclasses.dataclass(frozen=True)
class TenantView(_View):
    tenant_id: str
    email: str | None
    name: str | None
    stripe_customer_id: str | None
    stripe_subscription_id: str | None
    current_plan: str | None
    billing_status: str
    api_access_enabled: bool
    created_at: datetime


@dataclasses.dataclass(frozen=True)
class SubscriptionView(_View):
    id: str
    tenant_id: str
    customer_id: str
    plan_type: str
    status: str
    trial_end: datetime | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    items: tuple[str, ...]
    latest_invoice: str | None
    # A downgrade recorded to take effect when the current period ends (see subscriptions.py).
    pending_plan: str | None = None
    # Whether Stripe has a payment method to charge (None: not known).
    payment_method_on_file: bool | None = None
    # A trial that will end with nothing to charge: the customer must add a payment method.
    trialing_without_payment_method: bool = False
    # What the customer must do for the first payment, e.g. {"type": "authenticate_payment",
    # "hosted_invoice_url": ...} while a 3-D Secure card waits for its cardholder.
    next_action: dict[str, str] | None = None


@dataclasses.dataclass(frozen=True)
class PlanChangeView(_View):
    subscription: SubscriptionView
    effective: Literal["now", "period_end"]
    from_plan: str
    to_plan: str
    proration_invoice: str | None


@dataclasses.dataclass(frozen=True)
class BillingSummary(_View):
    tenant: TenantView
    plan: str | None
    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    trial_end: datetime | None
    payment_method_on_file: bool
    access: Access
    rate_limit_multiplier: float
    reason: str
    dunning_state: str  # as the timeline's newest entry and the entitlement say
    subscription_id: str | None = None
    cancel_at_period_end: bool = False
    pending_plan: str | None = None


@dataclasses.dataclass(frozen=True)
class CatalogChange(_View):
    action: ChangeAction
    kind: Literal["meter", "product", "price"]
    lookup_key: str
    detail: str
    stripe_id: str | None = None
