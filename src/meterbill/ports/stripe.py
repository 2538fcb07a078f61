"""What services need from Stripe's billing API, as Protocols, and the plain records it returns.

Services depend on `StripePort` (customers, subscriptions, catalog) and `PortalPort` (the
customer billing portal), never on the `stripe` package; `adapters.stripe_gateway` and
`adapters.stripe_portal` implement them, and `adapters.stripe_records` maps Stripe's JSON to
these records. Every write takes an `idempotency_key` that the caller derives from our own ids.
Errors come out as `meterbill.domain.errors` types (StripeUnavailable, StripeCardError, ...).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from ..domain.plans import MeterDefinition, PriceDefinition


@dataclass(frozen=True)
class CustomerRecord:
    id: str
    email: str | None
    name: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)
    default_payment_method: str | None = None


@dataclass(frozen=True)
class SubscriptionItemRecord:
    id: str
    price_id: str
    price_lookup_key: str | None
    current_period_start: datetime | None
    current_period_end: datetime | None


@dataclass(frozen=True)
class SubscriptionRecord:
    id: str
    customer_id: str
    status: str
    items: tuple[SubscriptionItemRecord, ...]
    trial_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None  # when the cancellation was asked for (not when it ends)
    latest_invoice: str | None
    default_payment_method: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    schedule_id: str | None = None  # the subscription schedule managing it, if any
    ended_at: datetime | None = None  # when it ended (a period-end cancellation: that end)

    @property
    def current_period_start(self) -> datetime | None:
        # Since API 2025-03-31 the period lives on each item; ours share one.
        starts = [i.current_period_start for i in self.items if i.current_period_start]
        return min(starts) if starts else None

    @property
    def current_period_end(self) -> datetime | None:
        ends = [i.current_period_end for i in self.items if i.current_period_end]
        return max(ends) if ends else None

    def item_for_id(self, item_id: str) -> SubscriptionItemRecord | None:
        return next((i for i in self.items if i.id == item_id), None)

    def item_for_price(self, price_id: str) -> SubscriptionItemRecord | None:
        return next((i for i in self.items if i.price_id == price_id), None)


@dataclass(frozen=True)
class ListedSubscription:
    """A subscription from Stripe's list with what its expanded customer says."""

    record: SubscriptionRecord
    customer_deleted: bool
    customer_default_payment_method: str | None


@dataclass(frozen=True)
class PaymentRecord:
    """The outcome of an invoice's payment so far: its payment intent's status
    (`requires_action`: the customer must authenticate; `requires_payment_method`: declined)
    with the decline, and the hosted invoice page where the customer can pay."""

    invoice_id: str
    invoice_status: str
    intent_status: str | None
    decline_code: str | None = None
    error_code: str | None = None
    message: str | None = None
    hosted_invoice_url: str | None = None


@dataclass(frozen=True)
class Tier:
    up_to: int | None  # None = "inf"
    unit_amount_decimal: Decimal | None
    flat_amount_decimal: Decimal | None = None


@dataclass(frozen=True)
class PriceRecord:
    id: str
    lookup_key: str | None
    product_id: str
    active: bool
    currency: str
    unit_amount_decimal: Decimal | None
    billing_scheme: str
    tiers_mode: str | None
    tiers: tuple[Tier, ...]
    interval: str | None
    usage_type: str | None
    meter_id: str | None


@dataclass(frozen=True)
class MeterRecord:
    id: str
    event_name: str
    display_name: str
    status: str
    value_key: str | None = None


@dataclass(frozen=True)
class ProductRecord:
    id: str
    name: str
    active: bool
    description: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)


class StripePort(Protocol):
    def ping(self) -> None: ...

    # `attach_payment_method` returns the attached method's id: attaching a test id such as
    # `pm_card_visa` makes a new `pm_...` object.
    # customers and payment methods
    def search_customer_by_tenant(self, tenant_id: str) -> CustomerRecord | None: ...
    def create_customer(self, *, tenant_id: str, email: str, name: str | None,
                        idempotency_key: str,
                        test_clock: str | None = None) -> CustomerRecord: ...
    def retrieve_customer(self, customer_id: str) -> CustomerRecord: ...
    def attach_payment_method(self, payment_method_id: str, customer_id: str, *,
                              idempotency_key: str) -> str: ...
    def set_default_payment_method(self, customer_id: str, payment_method_id: str, *,
                                   idempotency_key: str) -> CustomerRecord: ...
    def list_payment_method_ids(self, customer_id: str, *, limit: int = 1) -> list[str]: ...

    # subscriptions
    def create_subscription(self, *, customer_id: str, price_ids: Sequence[str],
                            trial_days: int, default_payment_method: str | None,
                            metadata: Mapping[str, str],
                            idempotency_key: str,
                            days_until_due: int | None = None) -> SubscriptionRecord: ...
    def retrieve_subscription(self, subscription_id: str) -> SubscriptionRecord: ...
    def set_cancel_at_period_end(self, subscription_id: str, value: bool, *,
                                 idempotency_key: str) -> SubscriptionRecord: ...
    def cancel_subscription(self, subscription_id: str, *,
                            idempotency_key: str | None = None) -> SubscriptionRecord: ...
    def invoice_payment(self, invoice_id: str) -> PaymentRecord: ...
    def change_subscription_prices(self, subscription_id: str, item_prices: Mapping[str, str],
                                   *, proration_behavior: str, metadata: Mapping[str, str],
                                   idempotency_key: str) -> SubscriptionRecord: ...
    # A subscription schedule whose current phase keeps the subscription's items until the
    # period end and whose next phase has `next_price_ids` (base quantity 1, metered without),
    # released after that phase; returns the schedule's id. Keys: `{idempotency_key}:create`
    # and `{idempotency_key}:phases`.
    def schedule_next_phase(self, subscription_id: str, next_price_ids: Sequence[str], *,
                            idempotency_key: str) -> str: ...
    def release_schedule(self, schedule_id: str, *, idempotency_key: str) -> None: ...

    # catalog
    def prices_by_lookup_key(self, lookup_keys: Sequence[str]) -> dict[str, PriceRecord]: ...
    def list_meters(self) -> list[MeterRecord]: ...
    def create_meter(self, meter: MeterDefinition, *, idempotency_key: str) -> MeterRecord: ...
    def update_meter(self, meter_id: str, display_name: str, *,
                     idempotency_key: str) -> MeterRecord: ...
    def list_products(self) -> list[ProductRecord]: ...
    def create_product(self, *, name: str, description: str | None,
                       metadata: Mapping[str, str], idempotency_key: str) -> ProductRecord: ...
    def update_product(self, product_id: str, *, name: str, description: str | None,
                       metadata: Mapping[str, str], idempotency_key: str) -> ProductRecord: ...
    def create_price(self, definition: PriceDefinition, *, product_id: str,
                     meter_id: str | None, transfer_lookup_key: bool,
                     idempotency_key: str) -> PriceRecord: ...


class SubscriptionListPort(Protocol):
    def subscription_pages(self, page_size: int = 100) -> Iterator[list[ListedSubscription]]:
        """Every subscription in Stripe (every status), one list call per page, newest first,
        each with its customer expanded."""
        ...


class PortalPort(Protocol):
    def create_session(self, customer_id: str, *, return_url: str | None,
                       idempotency_key: str) -> str:
        """The URL of a new billing portal session for `customer_id` (it lives minutes)."""
        ...
