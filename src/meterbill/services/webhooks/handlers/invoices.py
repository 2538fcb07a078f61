"""`invoice.created` flushes the period's usage; `invoice.finalization_failed` alerts an admin.

Stripe leaves a subscription's renewal invoice in draft for about an hour: usage reported before
it finalizes lands on it. The flush itself is the usage issue's `UsageFlushPort`.
"""

from __future__ import annotations

import logging

from ..context import HandlerContext, InboxEvent

log = logging.getLogger("meterbill.webhooks")


def handle_invoice_created(ctx: HandlerContext, event: InboxEvent) -> str:
    invoice = ctx.stripe.retrieve_invoice(event.object_id)
    if invoice.status != "draft":
        return f"invoice {invoice.id} is already {invoice.status}; too late to add usage"
    if invoice.subscription_id is None or invoice.period_end is None:
        return f"invoice {invoice.id} is not a subscription invoice; no usage to flush"
    # Flush before taking the tenant's lock: the flush commits ledger rows in sessions of its
    # own, which on SQLite would wait for this transaction's write lock until it timed out.
    ctx.usage.flush(invoice.customer_id, invoice.period_end)
    tenant = ctx.tenant_for_customer(invoice.customer_id)
    return (f"tenant {tenant.tenant_id}: usage up to {invoice.period_end.isoformat()} flushed "
            f"for draft invoice {invoice.id}")


def handle_finalization_failed(ctx: HandlerContext, event: InboxEvent) -> str:
    invoice = ctx.stripe.retrieve_invoice(event.object_id)
    error = event.object.get("last_finalization_error") or {}
    reason = error.get("message") if isinstance(error, dict) else None
    tenant = ctx.tenant_for_customer(invoice.customer_id)
    detail = (f"Invoice {invoice.id} of tenant {tenant.tenant_id} could not be finalized: "
              f"{reason or 'no reason given'}. Fix it in Stripe (customer address, tax "
              "settings) and finalize it again.")
    log.error("ADMIN ALERT: %s", detail)
    ctx.notice(kind="admin_alert", dedupe_key=f"finalization_failed:{event.id}", detail=detail,
               tenant_id=tenant.tenant_id, event_id=event.id)
    return detail
