"""`InvoiceDraftsPort` over stripe-python: a draft's lines named by the plan of their price's
product (its metadata) and the price's usage type, and the writes of a review.

A draft's metered line shows the usage Stripe had when it drafted the invoice; at finalization
Stripe re-reads the meter ("During finalization, Stripe updates the invoice to reflect the
latest quantity"). So the line is read as Stripe will bill it: the meter's total for the line's
period now (after meterbill's flush), priced through the line's own price. A price is read once
per process (prices never change their product, usage type or tiers): a renewal date's
thousand drafts cost the invoice, its customer and one meter summary each."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import stripe

from ..domain.invoice_check import InvoiceLine, Part, PriceTier, tiered_amount
from ..domain.money import round_cents
from ..domain.usage_slots import ceil_minute, floor_minute
from ..ports.invoices import DraftInvoice
from . import stripe_records as records
from .stripe_gateway import StripeGateway, stripe_errors


def _opts(idempotency_key: str) -> Any:
    return {"idempotency_key": idempotency_key}


def _decimal(exact: Any, whole: Any) -> Decimal:
    if exact not in (None, ""):
        return Decimal(str(exact))
    return Decimal(int(whole)) if whole not in (None, "") else Decimal(0)


@dataclass(frozen=True)
class _Price:
    """What a line's price says: its plan (the product's metadata) and part, and how it
    prices a metered quantity."""

    plan: str | None
    part: Part
    meter: str | None
    mode: str
    tiers: tuple[PriceTier, ...]
    unit: Decimal


class StripeInvoiceDrafts:
    def __init__(self, gateway: StripeGateway, *, plan_metadata_key: str) -> None:
        self.gateway = gateway
        self.client: stripe.StripeClient = gateway.client
        self.plan_metadata_key = plan_metadata_key
        self._prices: dict[str, _Price] = {}
        self._lock = threading.Lock()

    def retrieve_draft(self, invoice_id: str) -> DraftInvoice:
        with stripe_errors(f"retrieve invoice {invoice_id}"):
            data = self.gateway.get_json("/v1/invoices", invoice_id)
            customer_id = records.ref(data.get("customer")) or ""
            lines = list((data.get("lines") or {}).get("data") or [])
            if (data.get("lines") or {}).get("has_more"):
                lines = self._all_lines(invoice_id)
            customer = self.gateway.get_json("/v1/customers", customer_id)
            balance = int(customer.get("balance") or 0)
            clock_id = records.ref(customer.get("test_clock"))
            clock = (self.gateway.get_json("/v1/test_helpers/test_clocks", clock_id)
                     if clock_id else {})
        parent = (data.get("parent") or {}).get("subscription_details") or {}
        read = tuple(self._line(line, customer_id, data.get("status") == "draft")
                     for line in lines)
        total = int(data.get("total") or 0)
        if data.get("status") == "draft":  # as Stripe will finalize it (usage re-read)
            total = sum(line.amount for line in read)
        return DraftInvoice(
            id=data["id"], customer_id=customer_id,
            subscription_id=records.ref(parent.get("subscription")),
            status=data.get("status") or "draft",
            auto_advance=bool(data.get("auto_advance")),
            billing_reason=data.get("billing_reason"),
            currency=data.get("currency") or "usd",
            period_start=records.timestamp(data.get("period_start")),
            period_end=records.timestamp(data.get("period_end")),
            created=records.timestamp(data.get("created")),
            automatically_finalizes_at=records.timestamp(data.get("automatically_finalizes_at")),
            total=total,
            customer_balance=balance,
            lines=read,
            stripe_time=records.timestamp(clock.get("frozen_time")),
        )

    def _all_lines(self, invoice_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = self.client.v1.invoices.line_items.list(
                invoice_id, params=params)  # type: ignore[arg-type]
            out += [line.to_dict() for line in page.data]
            if not page.has_more or not page.data:
                return out
            params["starting_after"] = page.data[-1].id

    def _line(self, line: dict[str, Any], customer_id: str, draft: bool) -> InvoiceLine:
        parent = line.get("parent") or {}
        details = (parent.get("subscription_item_details")
                   or parent.get("invoice_item_details") or {})
        proration = bool(details.get("proration"))
        price_details = (line.get("pricing") or {}).get("price_details") or {}
        price_id = records.ref(price_details.get("price"))
        price = self._price(price_id) if price_id else None
        plan, part = (price.plan, price.part) if price else (None, "other")
        period = line.get("period") or {}
        start, end = records.timestamp(period.get("start")), records.timestamp(period.get("end"))
        label = str(line.get("description") or "")
        quantity, amount = int(line.get("quantity") or 0), int(line["amount"])
        if proration or plan is None:
            # Prorations and one-off items are not in meterbill's expected invoice.
            plan, part = None, "other"
            label = ("proration: " if proration else "item: ") + label
        elif draft and price is not None and price.meter and start and end:
            # Stripe re-reads a draft's usage when it finalizes it: what it will bill is the
            # meter's total now, priced through the line's own price.
            quantity = self._meter_total(price.meter, customer_id, start, end)
            amount = tiered_amount(price.tiers, quantity, price.mode) if price.tiers else \
                round_cents(quantity * price.unit)
        return InvoiceLine(plan, part, quantity, amount, start, end, label, proration)

    def _meter_total(self, meter_id: str, customer_id: str, start: datetime,
                     end: datetime) -> int:
        # Summaries take minute-aligned windows; the usage sync stamps events inside
        # [ceil_minute(start), floor_minute(end)) (domain/usage_slots.py).
        low, high = ceil_minute(start), floor_minute(end)
        if high <= low:
            return 0
        params: Any = {"customer": customer_id, "start_time": int(low.timestamp()),
                       "end_time": int(high.timestamp())}
        page = self.client.v1.billing.meters.event_summaries.list(meter_id, params=params)
        return sum(int(s.aggregated_value) for s in page.auto_paging_iter())

    def _price(self, price_id: str) -> _Price:
        with self._lock:
            found = self._prices.get(price_id)
        if found is not None:
            return found
        data = self.gateway.get_json("/v1/prices", price_id, expand=["product", "tiers"])
        product = data.get("product")
        metadata = (product.get("metadata") if isinstance(product, dict) else None) or {}
        plan = metadata.get(self.plan_metadata_key)
        recurring = data.get("recurring") or {}
        usage = recurring.get("usage_type")
        part: Part = "overage" if usage == "metered" else "base" if usage == "licensed" \
            else "other"
        tiers = tuple(PriceTier(None if t.get("up_to") in (None, "inf") else int(t["up_to"]),
                                _decimal(t.get("unit_amount_decimal"), t.get("unit_amount")),
                                _decimal(t.get("flat_amount_decimal"), t.get("flat_amount")))
                      for t in data.get("tiers") or [])
        found = _Price(plan if isinstance(plan, str) else None, part,
                       recurring.get("meter") if usage == "metered" else None,
                       data.get("tiers_mode") or "graduated", tiers,
                       _decimal(data.get("unit_amount_decimal"), data.get("unit_amount")))
        with self._lock:
            self._prices[price_id] = found
        return found

    def hold(self, invoice_id: str, *, idempotency_key: str) -> None:
        with stripe_errors(f"hold invoice {invoice_id}"):
            self.client.v1.invoices.update(invoice_id, params={"auto_advance": False},
                                           options=_opts(idempotency_key))

    def release(self, invoice_id: str, *, idempotency_key: str) -> None:
        with stripe_errors(f"release invoice {invoice_id}"):
            self.client.v1.invoices.update(invoice_id, params={"auto_advance": True},
                                           options=_opts(idempotency_key))

    def add_item(self, invoice_id: str, customer_id: str, amount: int, currency: str,
                 description: str, *, idempotency_key: str) -> str:
        with stripe_errors(f"add a correction to invoice {invoice_id}"):
            item = self.client.v1.invoice_items.create(params={
                "customer": customer_id, "invoice": invoice_id, "amount": amount,
                "currency": currency, "description": description,
            }, options=_opts(idempotency_key))
        return str(item.id)

    def finalize(self, invoice_id: str, *, collect: bool, idempotency_key: str) -> str:
        with stripe_errors(f"finalize invoice {invoice_id}"):
            invoice = self.client.v1.invoices.finalize_invoice(
                invoice_id, params={"auto_advance": collect}, options=_opts(idempotency_key))
        return str(invoice.status)

    def void(self, invoice_id: str, *, idempotency_key: str) -> None:
        with stripe_errors(f"void invoice {invoice_id}"):
            self.client.v1.invoices.void_invoice(invoice_id, options=_opts(idempotency_key))
