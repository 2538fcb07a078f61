"""Stripe JSON (as plain dicts) -> the records in `ports.stripe`. Tolerant of missing keys."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..ports.stripe import (
    CustomerRecord,
    ListedSubscription,
    MeterRecord,
    PriceRecord,
    ProductRecord,
    SubscriptionItemRecord,
    SubscriptionRecord,
    Tier,
)


def timestamp(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value), UTC)


def ref(value: Any) -> str | None:
    """An id, whether Stripe sent the id or the expanded object."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return str(value)


def decimal_or_none(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def customer(data: dict[str, Any]) -> CustomerRecord:
    settings = data.get("invoice_settings") or {}
    return CustomerRecord(
        id=data["id"],
        email=data.get("email"),
        name=data.get("name"),
        metadata=dict(data.get("metadata") or {}),
        default_payment_method=ref(settings.get("default_payment_method")),
    )


def listed_subscription(data: dict[str, Any]) -> ListedSubscription:
    customer = data.get("customer")
    expanded = customer if isinstance(customer, dict) else {}
    settings = expanded.get("invoice_settings") or {}
    return ListedSubscription(
        record=subscription(data), customer_deleted=bool(expanded.get("deleted")),
        customer_default_payment_method=ref(settings.get("default_payment_method")))


def subscription(data: dict[str, Any]) -> SubscriptionRecord:
    items = []
    for item in (data.get("items") or {}).get("data") or []:
        price = item.get("price") or {}
        items.append(SubscriptionItemRecord(
            id=item["id"],
            price_id=ref(price) or "",
            price_lookup_key=price.get("lookup_key") if isinstance(price, dict) else None,
            current_period_start=timestamp(item.get("current_period_start")),
            current_period_end=timestamp(item.get("current_period_end")),
        ))
    return SubscriptionRecord(
        id=data["id"],
        customer_id=ref(data.get("customer")) or "",
        status=data.get("status") or "incomplete",
        items=tuple(items),
        trial_end=timestamp(data.get("trial_end")),
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        canceled_at=timestamp(data.get("canceled_at")),
        latest_invoice=ref(data.get("latest_invoice")),
        default_payment_method=ref(data.get("default_payment_method")),
        metadata=dict(data.get("metadata") or {}),
        schedule_id=ref(data.get("schedule")),
        ended_at=timestamp(data.get("ended_at")),
    )


def _tier(data: dict[str, Any]) -> Tier:
    unit = decimal_or_none(data.get("unit_amount_decimal"))
    if unit is None and data.get("unit_amount") is not None:
        unit = Decimal(int(data["unit_amount"]))
    flat = decimal_or_none(data.get("flat_amount_decimal"))
    if flat is None and data.get("flat_amount") is not None:
        flat = Decimal(int(data["flat_amount"]))
    up_to = data.get("up_to")
    return Tier(up_to=None if up_to in (None, "inf") else int(up_to), unit_amount_decimal=unit,
                flat_amount_decimal=flat)


def price(data: dict[str, Any]) -> PriceRecord:
    recurring = data.get("recurring") or {}
    unit = decimal_or_none(data.get("unit_amount_decimal"))
    if unit is None and data.get("unit_amount") is not None:
        unit = Decimal(int(data["unit_amount"]))
    return PriceRecord(
        id=data["id"],
        lookup_key=data.get("lookup_key"),
        product_id=ref(data.get("product")) or "",
        active=bool(data.get("active", True)),
        currency=data.get("currency") or "",
        unit_amount_decimal=unit,
        billing_scheme=data.get("billing_scheme") or "per_unit",
        tiers_mode=data.get("tiers_mode"),
        tiers=tuple(_tier(t) for t in data.get("tiers") or []),
        interval=recurring.get("interval"),
        usage_type=recurring.get("usage_type"),
        meter_id=recurring.get("meter"),
    )


def meter(data: dict[str, Any]) -> MeterRecord:
    value_settings = data.get("value_settings") or {}
    return MeterRecord(
        id=data["id"],
        event_name=data.get("event_name") or "",
        display_name=data.get("display_name") or "",
        status=data.get("status") or "active",
        value_key=value_settings.get("event_payload_key"),
    )


def product(data: dict[str, Any]) -> ProductRecord:
    return ProductRecord(
        id=data["id"],
        name=data.get("name") or "",
        active=bool(data.get("active", True)),
        description=data.get("description"),
        metadata=dict(data.get("metadata") or {}),
    )
