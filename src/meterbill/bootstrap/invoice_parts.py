"""How the container makes the invoice parts: verification of Stripe's drafts, the review
queue (docs/invoice-verification.md), and a customer's invoices for the console."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from ..adapters.stripe_gateway import StripeGateway
from ..adapters.stripe_invoice_drafts import StripeInvoiceDrafts
from ..adapters.stripe_invoices import StripeInvoices
from ..services.billing.invoices import InvoiceService
from ..services.invoices.review import InvoiceReviewService
from ..services.invoices.verify import InvoiceVerifier

if TYPE_CHECKING:
    from .container import Container


def _invoice_drafts(container: Container, gateway: StripeGateway) -> StripeInvoiceDrafts:
    from ..services.billing.catalog_sync import PLAN_METADATA_KEY

    return StripeInvoiceDrafts(gateway, plan_metadata_key=PLAN_METADATA_KEY)


def invoice_verifier(container: Container) -> InvoiceVerifier:
    """Invoice verification for the webhook handlers: Stripe through their gateway (its short
    timeout), the usage store opened when the first draft is checked."""
    from ..domain.invoice_check import ReviewRules
    from ..services.invoices.verify import VerifyOptions

    s = container.settings
    rules = ReviewRules(first_invoice=s.invoice_hold_first,
                        usage_multiple=s.invoice_hold_usage_multiple,
                        amount_above_cents=s.invoice_hold_amount_above_cents,
                        proration=s.invoice_hold_proration,
                        credit_balance=s.invoice_hold_credit_balance)
    return InvoiceVerifier(container.db, _invoice_drafts(container, container.webhook_gateway),
                           lambda: container.usage_store, container.catalog, container.notifier,
                           VerifyOptions(s.invoice_tolerance_cents, rules))


def invoice_review(container: Container) -> InvoiceReviewService:
    """The review queue and its actions (API, CLI, the console)."""
    hours = container.settings.invoice_review_remind_hours
    return InvoiceReviewService(container.db, _invoice_drafts(container, container.gateway),
                                container.notifier,
                                remind_after=timedelta(hours=hours) if hours > 0 else None)


def invoices(container: Container) -> InvoiceService:
    """A customer's invoices for the console and the billing page."""
    return InvoiceService(container.db, StripeInvoices(container.gateway))
