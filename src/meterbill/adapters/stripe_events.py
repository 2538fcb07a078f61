"""Stripe for webhook processing: signature checks and re-reading the objects events name.

`StripeSignatureVerifier` uses stripe-python's own `WebhookSignature.verify_header` (HMAC-SHA256
over `"{t}.{body}"`, constant-time compare, timestamp tolerance) against each configured secret
in turn, so an endpoint secret can be rolled: Stripe signs with the old and the new secret while
both are live, and we accept either.

`StripeEvents` implements `ports.webhooks.StripeEventsPort` on the same `StripeClient`
as the gateway (built once in bootstrap).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import stripe

from ..ports.stripe import SubscriptionRecord
from ..ports.webhooks import (
    InvalidSignature,
    InvoiceRecord,
    PaymentMethodRecord,
    StripeEventRecord,
    VerifiedEvent,
    parse_event,
)
from . import stripe_records as records
from .stripe_gateway import StripeGateway, stripe_errors

DEFAULT_TOLERANCE_SECONDS = 300  # Stripe's own default


class StripeSignatureVerifier:
    def __init__(self, secrets: Sequence[str],
                 tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS) -> None:
        self.secrets = [s for s in secrets if s]
        self.tolerance = tolerance_seconds

    def verify(self, payload: bytes, signature_header: str | None) -> VerifiedEvent:
        if not self.secrets:
            raise InvalidSignature("no webhook signing secret is configured "
                                   "(set STRIPE_WEBHOOK_SECRET)")
        if not signature_header:
            raise InvalidSignature("missing Stripe-Signature header")
        # stripe-python decodes the body itself (a UnicodeDecodeError, not its own error) and
        # compares signatures with hmac.compare_digest (a TypeError for non-ASCII text): both
        # are refused here first, so that only SignatureVerificationError is left to catch.
        if not signature_header.isascii():
            raise InvalidSignature("Stripe-Signature header is not ASCII")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidSignature("body is not UTF-8") from None
        reason = "signature mismatch"
        for secret in self.secrets:
            try:
                stripe.WebhookSignature.verify_header(text, signature_header, secret,
                                                      self.tolerance)
                break
            except stripe.SignatureVerificationError as error:
                # Stripe's messages name the problem (timestamp, scheme) and never the body.
                reason = str(error.user_message or error)
        else:
            raise InvalidSignature(reason)
        return parse_event(text)


def _data(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def invoice_record(data: dict[str, Any]) -> InvoiceRecord:
    # Since API 2025-03-31 the subscription is under parent.subscription_details.
    parent = data.get("parent") or {}
    details = parent.get("subscription_details") or {}
    subscription = records.ref(details.get("subscription"))
    transitions = data.get("status_transitions") or {}
    return InvoiceRecord(
        id=data["id"],
        customer_id=records.ref(data.get("customer")) or "",
        subscription_id=subscription,
        status=data.get("status") or "draft",
        attempt_count=int(data.get("attempt_count") or 0),
        amount_due=int(data.get("amount_due") or 0),
        amount_paid=int(data.get("amount_paid") or 0),
        currency=data.get("currency") or "usd",
        billing_reason=data.get("billing_reason"),
        period_start=records.timestamp(data.get("period_start")),
        period_end=records.timestamp(data.get("period_end")),
        paid_at=records.timestamp(transitions.get("paid_at")),
        next_payment_attempt=records.timestamp(data.get("next_payment_attempt")),
        created=records.timestamp(data.get("created")),
        hosted_invoice_url=data.get("hosted_invoice_url"),
        collection_method=data.get("collection_method") or "charge_automatically",
        due_date=records.timestamp(data.get("due_date")),
        number=data.get("number"),
        invoice_pdf=data.get("invoice_pdf"),
    )


class StripeEvents:
    """`StripeEventsPort` over the gateway's client."""

    def __init__(self, gateway: StripeGateway, *, live: bool = False) -> None:
        self.gateway = gateway
        self.client = gateway.client
        self.live = live  # a live key: no test clocks to ask about

    def retrieve_invoice(self, invoice_id: str) -> InvoiceRecord:
        with stripe_errors(f"retrieve invoice {invoice_id}"):
            return invoice_record(self.gateway.get_json("/v1/invoices", invoice_id))

    def retrieve_invoice_and_subscription(
            self, invoice_id: str) -> tuple[InvoiceRecord, SubscriptionRecord | None]:
        # Since API 2025-03-31 the subscription is under parent.subscription_details.
        with stripe_errors(f"retrieve invoice {invoice_id}"):
            data = self.gateway.get_json("/v1/invoices", invoice_id,
                                         expand=["parent.subscription_details.subscription"])
        details = (data.get("parent") or {}).get("subscription_details") or {}
        expanded = details.get("subscription")
        subscription = records.subscription(expanded) if isinstance(expanded, dict) else None
        return invoice_record(data), subscription

    def retrieve_subscription(self, subscription_id: str) -> SubscriptionRecord:
        return self.gateway.retrieve_subscription(subscription_id)

    def retrieve_payment_method(self, payment_method_id: str) -> PaymentMethodRecord:
        with stripe_errors(f"retrieve payment method {payment_method_id}"):
            data = self.gateway.get_json("/v1/payment_methods", payment_method_id)
        card = data.get("card") or {}
        return PaymentMethodRecord(id=data["id"], customer_id=records.ref(data.get("customer")),
                                   type=data.get("type") or "card",
                                   card_brand=card.get("brand"), card_last4=card.get("last4"))

    def payment_method_on_file(self, customer_id: str) -> bool:
        customer = self.gateway.retrieve_customer(customer_id)
        if customer.default_payment_method:
            return True
        return bool(self.gateway.list_payment_method_ids(customer_id, limit=1))

    def clock_time(self, customer_id: str) -> datetime | None:
        with stripe_errors(f"retrieve customer {customer_id}"):
            customer = self.gateway.get_json("/v1/customers", customer_id)
        clock_id = records.ref(customer.get("test_clock"))
        if not clock_id:
            return None
        with stripe_errors(f"retrieve test clock {clock_id}"):
            clock = self.gateway.get_json("/v1/test_helpers/test_clocks", clock_id)
        return records.timestamp(clock.get("frozen_time"))

    def latest_clock_time(self) -> datetime | None:
        if self.live:
            return None
        latest: datetime | None = None
        params: dict[str, Any] = {"limit": 100}
        while True:
            with stripe_errors("list test clocks"):
                page = self.client.v1.test_helpers.test_clocks.list(
                    params=params)  # type: ignore[arg-type]
            for clock in page.data:
                frozen = records.timestamp(clock.frozen_time)
                if frozen is not None and (latest is None or frozen > latest):
                    latest = frozen
            if not page.has_more or not page.data:
                return latest
            params["starting_after"] = page.data[-1].id

    def list_open_emailed_invoices(self, *, due_before: datetime) -> Iterator[InvoiceRecord]:
        params: dict[str, Any] = {"limit": 100, "status": "open",
                                  "collection_method": "send_invoice",
                                  "due_date": {"lt": int(due_before.timestamp())}}
        while True:
            with stripe_errors("list open emailed invoices past due"):
                page = self.client.v1.invoices.list(params=params)  # type: ignore[arg-type]
            for invoice in page.data:
                yield invoice_record(_data(invoice))
            if not page.has_more or not page.data:
                return
            params["starting_after"] = page.data[-1].id

    def decline_code(self, invoice_id: str) -> str | None:
        # Since API 2025-03-31 an invoice names its payment intents under `payments`.
        with stripe_errors(f"retrieve the payments of invoice {invoice_id}"):
            data = self.gateway.get_json("/v1/invoices", invoice_id,
                                         expand=["payments.data.payment.payment_intent"])
        payments = (data.get("payments") or {}).get("data") or []
        for payment in sorted(payments, key=lambda p: not p.get("is_default")):
            intent = (payment.get("payment") or {}).get("payment_intent")
            if isinstance(intent, dict):
                error = intent.get("last_payment_error") or {}
                if error.get("decline_code"):
                    return str(error["decline_code"])
        return None

    def list_events(self, *, since: datetime) -> Iterator[StripeEventRecord]:
        # Stripe lists newest first; we collect the window and hand it back oldest first.
        found: list[StripeEventRecord] = []
        params: dict[str, Any] = {"limit": 100, "created": {"gte": int(since.timestamp())}}
        while True:
            with stripe_errors("list events"):
                page = self.client.v1.events.list(params=params)  # type: ignore[arg-type]
            # The raw JSON as Stripe sent it (stripe-python's objects turn decimal strings
            # into Decimal), so a caught-up event is stored exactly as a delivered one.
            raw = json.loads(page.last_response.body) if page.last_response else None
            for data in raw["data"] if raw else [_data(e) for e in page.data]:
                created = records.timestamp(data.get("created"))
                assert created is not None
                found.append(StripeEventRecord(id=data["id"], type=data["type"],
                                               created=created, payload=json.dumps(data)))
            if not page.has_more or not page.data:
                break
            params["starting_after"] = page.data[-1].id
        found.sort(key=lambda e: (e.created, e.id))
        yield from found
