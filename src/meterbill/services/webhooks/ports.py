"""What webhook processing needs from the outside, as Protocols, and the records it reads.

- `SignatureVerifier`: checks `Stripe-Signature` (adapters.stripe_events, stripe-python's own
  `WebhookSignature`); services never import `stripe`.
- `StripeEventsPort`: the current state of the objects events talk about, re-read from Stripe so
  that an old event cannot undo a newer state; and Stripe's event list for catch-up.
- `TaskRunner`: runs `process(row_id)` later (inline thread pool, Celery).
- `DunningPort` and `UsageFlushPort`: seams the dunning and usage issues implement
  (`services.dunning.DunningService`; the usage default here does nothing).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from ..ports import SubscriptionRecord

if TYPE_CHECKING:
    from ...adapters.db.models import Tenant
    from .context import HandlerContext, InboxEvent


class InvalidSignature(Exception):
    """The body is not a genuine, recent Stripe event. The message never contains the body."""


@dataclass(frozen=True)
class VerifiedEvent:
    """An event whose signature checked out: the parsed envelope plus the exact body."""

    id: str
    type: str
    created: datetime
    object_id: str | None
    payload: str


@dataclass(frozen=True)
class InvoiceRecord:
    id: str
    customer_id: str
    subscription_id: str | None
    status: str  # draft, open, paid, uncollectible, void
    attempt_count: int
    amount_due: int  # cents
    amount_paid: int
    currency: str
    billing_reason: str | None
    period_start: datetime | None
    period_end: datetime | None
    paid_at: datetime | None
    next_payment_attempt: datetime | None
    created: datetime | None
    hosted_invoice_url: str | None = None  # the page where the customer can pay it


@dataclass(frozen=True)
class PaymentMethodRecord:
    id: str
    customer_id: str | None  # None once detached
    type: str
    card_brand: str | None = None
    card_last4: str | None = None


@dataclass(frozen=True)
class StripeEventRecord:
    """One event from Stripe's `GET /v1/events`, as the raw JSON we would have received."""

    id: str
    type: str
    created: datetime
    payload: str


def parse_event(payload: bytes | str) -> VerifiedEvent:
    """The envelope of a Stripe event body; `InvalidSignature` if it is not one."""
    text = payload.decode("utf-8") if isinstance(payload, bytes | bytearray) else payload
    try:
        data = json.loads(text)
        event_id, event_type = data["id"], data["type"]
        created = datetime.fromtimestamp(int(data["created"]), UTC)
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidSignature(f"signed body is not a Stripe event ({type(error).__name__})") \
            from None
    if not isinstance(event_id, str) or not event_id.startswith("evt_"):
        raise InvalidSignature("signed body is not a Stripe event (no evt_ id)")
    obj = (data.get("data") or {}).get("object") or {}
    object_id = obj.get("id") if isinstance(obj, dict) else None
    return VerifiedEvent(id=event_id, type=str(event_type), created=created,
                         object_id=object_id if isinstance(object_id, str) else None,
                         payload=text)


class SignatureVerifier(Protocol):
    def verify(self, payload: bytes, signature_header: str | None) -> VerifiedEvent:
        """Raise `InvalidSignature` unless one of the secrets signed `payload` recently."""
        ...


class StripeEventsPort(Protocol):
    def retrieve_invoice(self, invoice_id: str) -> InvoiceRecord: ...
    def retrieve_invoice_and_subscription(
            self, invoice_id: str) -> tuple[InvoiceRecord, SubscriptionRecord | None]:
        """The invoice and, when a subscription made it, that subscription as it is now: one
        request (`expand`), where each payment event would otherwise cost two."""
        ...

    def retrieve_subscription(self, subscription_id: str) -> SubscriptionRecord: ...
    def retrieve_payment_method(self, payment_method_id: str) -> PaymentMethodRecord: ...
    def payment_method_on_file(self, customer_id: str) -> bool: ...
    def clock_time(self, customer_id: str) -> datetime | None:
        """The frozen time of the customer's test clock, or None (no clock: Stripe's now is
        the real now). Time-based rules use it so that test clocks drive them too."""
        ...

    def decline_code(self, invoice_id: str) -> str | None:
        """The issuer's decline code of the invoice's last failed charge (its payment intent's
        `last_payment_error.decline_code`), or None."""
        ...

    def list_events(self, *, since: datetime) -> Iterator[StripeEventRecord]:
        """Every event Stripe still has (30 days) created at or after `since`, oldest first."""
        ...


class TaskRunner(Protocol):
    def submit(self, row_id: int) -> None:
        """Arrange for inbox row `row_id` to be processed soon. Call only after its commit."""
        ...

    def close(self) -> None: ...


class DunningPort(Protocol):
    """What payments, subscriptions and trials mean for the tenant (services/dunning.py).

    Called inside the handler's transaction with the tenant's row, after the objects were
    re-read from Stripe. It reads what else it needs from Stripe, then calls `ctx.claim()`
    before its first write: the subscription copy, the tenant's access, timeline entries and
    notices commit together with the event's handled mark. Each returns a note of what it
    did."""

    def on_invoice(self, ctx: HandlerContext, event: InboxEvent, tenant: Tenant,
                   invoice: InvoiceRecord, subscription: SubscriptionRecord | None) -> str:
        """`invoice` decides the tenant's payment state (the subscription's latest one);
        `subscription` is its subscription as Stripe has it now."""
        ...

    def on_subscription(self, ctx: HandlerContext, event: InboxEvent, tenant: Tenant,
                        record: SubscriptionRecord) -> str:
        """A subscription of the tenant changed in Stripe: store it and decide again."""
        ...

    def on_trial_will_end(self, ctx: HandlerContext, event: InboxEvent, tenant: Tenant,
                          record: SubscriptionRecord) -> str:
        """The trial ends soon and no payment method is on file: remind the customer."""
        ...


class UsageFlushPort(Protocol):
    def flush(self, customer_id: str, period_end: datetime) -> None:
        """Report the period's remaining usage to Stripe before the draft invoice finalizes."""
        ...


class NoUsageFlush:
    """The default until the usage issue plugs in its sync: nothing to flush."""

    def flush(self, customer_id: str, period_end: datetime) -> None:
        return None
