"""`invoice.paid`/`invoice.payment_succeeded` and `invoice.payment_failed`.

Both are decided on what Stripe says NOW, not on which event arrived last: the handler re-reads
the invoice, and when it belongs to a subscription, the subscription's latest invoice (a newer
invoice decides over an older one). A paid latest invoice means the tenant is recovered; an open
one that Stripe has tried to charge means a payment failure. So a `payment_failed` delivered
after the `payment_succeeded` for the same invoice sees a paid invoice and leaves the tenant
active, and any order of delivery ends in the same state.

What a failure or a recovery means for the tenant is the `DunningPort`'s call (the dunning issue
implements it); `RecordOnTenant` is the default and only records the facts on the tenant row.
"""

from __future__ import annotations

import logging

from ....adapters.db.models import Tenant, utcnow
from ....domain.policies import access_for
from ..context import HandlerContext, InboxEvent
from ..ports import InvoiceRecord

log = logging.getLogger("meterbill.webhooks")

# Statuses a failed payment moves to past_due, and those a recovery moves back to active.
_FAILS_FROM = frozenset({"active", "trialing", "past_due"})
_RECOVERS_FROM = frozenset({"past_due", "unpaid", "incomplete"})


class RecordOnTenant:
    """The default `DunningPort`: failure count, status and access on the tenant row."""

    def on_payment_failed(self, tenant: Tenant, invoice: InvoiceRecord) -> None:
        tenant.payment_failures = invoice.attempt_count
        if tenant.billing_status in _FAILS_FROM:
            _set_status(tenant, "past_due")
        tenant.updated_at = utcnow()

    def on_payment_recovered(self, tenant: Tenant, invoice: InvoiceRecord) -> None:
        tenant.payment_failures = 0
        if invoice.paid_at and (tenant.last_payment_date is None
                                or invoice.paid_at > tenant.last_payment_date):
            tenant.last_payment_date = invoice.paid_at
        if tenant.billing_status in _RECOVERS_FROM:
            _set_status(tenant, "active")
        tenant.updated_at = utcnow()


def _set_status(tenant: Tenant, status: str) -> None:
    tenant.billing_status = status
    decision = access_for(status, soft_suspended=tenant.soft_suspended)
    tenant.api_access_enabled = decision.api_access_enabled
    tenant.rate_limit_multiplier = decision.rate_limit_multiplier


def current_invoice(ctx: HandlerContext, invoice_id: str) -> InvoiceRecord:
    """The invoice that decides the tenant's payment state: the subscription's latest one."""
    invoice = ctx.stripe.retrieve_invoice(invoice_id)
    if invoice.subscription_id:
        subscription = ctx.stripe.retrieve_subscription(invoice.subscription_id)
        latest = subscription.latest_invoice
        if latest and latest != invoice.id:
            newer = ctx.stripe.retrieve_invoice(latest)
            # A draft renewal has not been charged yet: the last charged invoice still decides.
            if newer.status != "draft":
                invoice = newer
    return invoice


def handle_payment_event(ctx: HandlerContext, event: InboxEvent) -> str:
    tenant = ctx.tenant_for_customer(event.customer_id)
    invoice = current_invoice(ctx, event.object_id)
    if invoice.status == "paid":
        ctx.dunning.on_payment_recovered(tenant, invoice)
        return (f"tenant {tenant.tenant_id}: invoice {invoice.id} is paid; "
                f"status {tenant.billing_status}, failures reset")
    if invoice.status == "open" and invoice.attempt_count > 0:
        ctx.dunning.on_payment_failed(tenant, invoice)
        log.warning("payment failed for tenant %s: invoice %s, attempt %d", tenant.tenant_id,
                    invoice.id, invoice.attempt_count)
        return (f"tenant {tenant.tenant_id}: invoice {invoice.id} unpaid after "
                f"{invoice.attempt_count} attempt(s); status {tenant.billing_status}")
    return f"invoice {invoice.id} is {invoice.status}; nothing to record"
