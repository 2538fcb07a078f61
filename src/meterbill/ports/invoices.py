"""What meterbill needs from Stripe about invoices: a customer's invoices and paying an open one
(the console and the billing page), and a draft with its lines named by plan with the four
writes that hold, correct, finalize or void it (invoice verification). Every write carries an
idempotency key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..domain.invoice_check import InvoiceLine
from .webhooks import InvoiceRecord


@dataclass(frozen=True)
class DraftInvoice:
    id: str
    customer_id: str
    subscription_id: str | None
    status: str
    auto_advance: bool
    billing_reason: str | None
    currency: str
    period_start: datetime | None  # the period the metered lines bill (Stripe's period_*)
    period_end: datetime | None
    created: datetime | None
    automatically_finalizes_at: datetime | None
    total: int  # cents
    customer_balance: int  # cents; negative is a credit the invoice will take at finalization
    lines: tuple[InvoiceLine, ...]
    stripe_time: datetime | None = None  # the customer's test clock, when it has one


class InvoiceDraftsPort(Protocol):
    def retrieve_draft(self, invoice_id: str) -> DraftInvoice: ...

    def hold(self, invoice_id: str, *, idempotency_key: str) -> None:
        """`auto_advance=false`: Stripe will not finalize or charge it until told to."""
        ...

    def release(self, invoice_id: str, *, idempotency_key: str) -> None:
        """`auto_advance=true` again: Stripe finalizes it a grace period from now."""
        ...

    def add_item(self, invoice_id: str, customer_id: str, amount: int, currency: str,
                 description: str, *, idempotency_key: str) -> str:
        """An invoice item on the draft (a correction); its id."""
        ...

    def finalize(self, invoice_id: str, *, collect: bool, idempotency_key: str) -> str:
        """Finalize; with `collect` Stripe collects it as usual (charges a card). Its status."""
        ...

    def void(self, invoice_id: str, *, idempotency_key: str) -> None: ...


class InvoicesPort(Protocol):
    def list_for_customer(self, customer_id: str, *, limit: int = 24) -> list[InvoiceRecord]:
        """The customer's invoices, newest first (drafts included)."""
        ...

    def pay(self, invoice_id: str, *, idempotency_key: str) -> InvoiceRecord:
        """Attempt payment of an open invoice now; raises `StripeCardError` on a decline."""
        ...
