"""`ports.invoices.InvoicesPort` over the gateway's Stripe client."""

from __future__ import annotations

from typing import Any

from ..ports.webhooks import InvoiceRecord
from .stripe_events import invoice_record
from .stripe_gateway import StripeGateway, stripe_errors


class StripeInvoices:
    def __init__(self, gateway: StripeGateway) -> None:
        self.client = gateway.client

    def list_for_customer(self, customer_id: str, *, limit: int = 24) -> list[InvoiceRecord]:
        with stripe_errors(f"list the invoices of customer {customer_id}"):
            response = self.client.raw_request("get", "/v1/invoices", customer=customer_id,
                                               limit=limit)
        data: Any = response.data
        return [invoice_record(item) for item in (data or {}).get("data") or []]

    def pay(self, invoice_id: str, *, idempotency_key: str) -> InvoiceRecord:
        with stripe_errors(f"pay invoice {invoice_id}"):
            obj = self.client.v1.invoices.pay(
                invoice_id, options={"idempotency_key": idempotency_key})
        return invoice_record(obj.to_dict())
