"""A customer's invoices in Stripe, for the console and the customer billing page."""

from __future__ import annotations

from typing import Protocol

from .webhooks import InvoiceRecord


class InvoicesPort(Protocol):
    def list_for_customer(self, customer_id: str, *, limit: int = 24) -> list[InvoiceRecord]:
        """The customer's invoices, newest first (drafts included)."""
        ...

    def pay(self, invoice_id: str, *, idempotency_key: str) -> InvoiceRecord:
        """Attempt payment of an open invoice now; raises `StripeCardError` on a decline."""
        ...
