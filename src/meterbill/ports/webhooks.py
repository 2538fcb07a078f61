"""Stripe's webhooks as services see them: the signature check, the objects events name
(re-read from Stripe), and the records and the exception they exchange.

- `SignatureVerifier`: checks `Stripe-Signature` (adapters.stripe_events, stripe-python's own
  `WebhookSignature`); services never import `stripe`. `InvalidSignature` is its refusal.
- `StripeEventsPort`: the current state of the objects events talk about, re-read from Stripe so
  that an old event cannot undo a newer state; and Stripe's event list for catch-up.
- `parse_event`: the envelope of an event body, for the verifier and for listed events alike;
  `MalformedEvent` (an `InvalidSignature`) for a body that is not Stripe's shape.
"""

from __future__ import annotations

import json
import re
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
    invoice_pdf: str | None = None  # the invoice as a PDF (Stripe hosts it)


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


class MalformedEvent(InvalidSignature):
    """A body (signed or listed) that is not a Stripe event: not JSON, or not Stripe's shape.
    The message names the field and what is wrong with it, never its value."""


# Stripe's limits are tighter; these keep what is stored (and logged) sane and printable.
_EVENT_ID = re.compile(r"evt_[A-Za-z0-9_]{1,251}")  # the inbox column holds 255
_EVENT_TYPE = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")
_MAX_TYPE = 128  # the inbox column
_MAX_OBJECT_ID = 255
_MAX_API_VERSION = 64
# `created`: 2000-01-01 to 2100-01-01 UTC (test clocks run ahead, but not by a century).
_MIN_CREATED, _MAX_CREATED = 946_684_800, 4_102_444_800


def parse_event(payload: bytes | str) -> VerifiedEvent:
    """The envelope of a Stripe event body; `MalformedEvent` (an `InvalidSignature`) if it is
    not one, whatever the body: each field is checked as it is read, so no body raises anything
    else. The payload kept is the body's text, byte for byte."""
    if isinstance(payload, bytes | bytearray):
        try:
            text = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedEvent("body is not UTF-8") from None
    else:
        text = payload
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deep
        raise MalformedEvent(f"body is not JSON ({type(error).__name__})") from None
    if not isinstance(data, dict):
        raise MalformedEvent(f"body is a JSON {_kind(data)}, not an event object")
    event_id = data.get("id")
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        raise MalformedEvent(f"id is not an evt_ id ({_kind(event_id)})")
    if data.get("object", "event") != "event":
        raise MalformedEvent("object is not \"event\"")
    event_type = data.get("type")
    if (not isinstance(event_type, str) or len(event_type) > _MAX_TYPE
            or not _EVENT_TYPE.fullmatch(event_type)):
        raise MalformedEvent(f"type is not an event type ({_kind(event_type)})")
    created = data.get("created")
    if type(created) is not int or not _MIN_CREATED <= created < _MAX_CREATED:
        raise MalformedEvent(f"created is not a timestamp in range ({_kind(created)})")
    if not isinstance(data.get("livemode"), bool):
        raise MalformedEvent(f"livemode is not a boolean ({_kind(data.get('livemode'))})")
    api_version = data.get("api_version")
    if api_version is not None and not _printable(api_version, _MAX_API_VERSION):
        raise MalformedEvent(f"api_version is not a version ({_kind(api_version)})")
    pending = data.get("pending_webhooks", 0)
    if type(pending) is not int or pending < 0:
        raise MalformedEvent(f"pending_webhooks is not a count ({_kind(pending)})")
    request = data.get("request")  # an object; a request id (str) before API 2017-05-25
    if request is not None and not isinstance(request, dict | str):
        raise MalformedEvent(f"request is not an object ({_kind(request)})")
    body = data.get("data")
    if not isinstance(body, dict):
        raise MalformedEvent(f"data is not an object ({_kind(body)})")
    obj = body.get("object")
    if not isinstance(obj, dict):
        raise MalformedEvent(f"data.object is not an object ({_kind(obj)})")
    if not isinstance(body.get("previous_attributes", {}), dict):
        raise MalformedEvent("data.previous_attributes is not an object "
                             f"({_kind(body.get('previous_attributes'))})")
    object_id = obj.get("id")  # a few objects have none
    if object_id is not None and not _printable(object_id, _MAX_OBJECT_ID):
        raise MalformedEvent(f"data.object.id is not an id ({_kind(object_id)})")
    return VerifiedEvent(id=event_id, type=event_type,
                         created=datetime.fromtimestamp(created, UTC),
                         object_id=object_id, payload=text)


def _printable(value: object, max_length: int) -> bool:
    """A non-empty str of printable characters (no controls, no lone surrogates)."""
    return (isinstance(value, str) and 0 < len(value) <= max_length and value.isprintable())


def _kind(value: object) -> str:
    """What a value is, for a refusal's message: its JSON type and, for text, its length;
    never the value itself (it may be anything the sender chose)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return f"string of {len(value)} characters"
    return "array" if isinstance(value, list) else "object"


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
