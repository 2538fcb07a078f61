"""Stripe's webhooks as services see them: the signature check, the objects events name
(re-read from Stripe), and the records and the exception they exchange.

- `SignatureVerifier`: checks `Stripe-Signature` (adapters.stripe_events, stripe-python's own
  `WebhookSignature`); services never import `stripe`. `InvalidSignature` is its refusal.
- `StripeEventsPort`: the current state of the objects events talk about, re-read from Stripe so
  that an old event cannot undo a newer state; and Stripe's event list for catch-up.
- `parse_event`: the envelope of an event body, for the verifier and for listed events alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from .stripe import SubscriptionRecord


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
    collection_method: str = "charge_automatically"  # or send_invoice: emailed, never charged
    due_date: datetime | None = None  # send_invoice: when payment is due
    number: str | None = None


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

    def latest_clock_time(self) -> datetime | None:
        """The latest frozen time among the account's test clocks, or None (live mode, or no
        clocks). A test clock may run ahead of the real now: Stripe's now is the later one."""
        ...

    def list_open_emailed_invoices(self, *, due_before: datetime) -> Iterator[InvoiceRecord]:
        """Every open invoice sent by email (`collection_method=send_invoice`) whose due date
        is before `due_before`: Stripe's `GET /v1/invoices` with `status=open`,
        `collection_method=send_invoice` and `due_date[lt]`, all pages."""
        ...

    def decline_code(self, invoice_id: str) -> str | None:
        """The issuer's decline code of the invoice's last failed charge (its payment intent's
        `last_payment_error.decline_code`), or None."""
        ...

    def list_events(self, *, since: datetime) -> Iterator[StripeEventRecord]:
        """Every event Stripe still has (30 days) created at or after `since`, oldest first."""
        ...
