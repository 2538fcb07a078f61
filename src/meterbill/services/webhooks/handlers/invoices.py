"""`invoice.created` flushes the period's usage and has the draft checked (invoice
verification); `invoice.finalization_failed` alerts an admin.

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
    # Then check the draft against meterbill's numbers (and hold it if they differ), also in
    # sessions of its own; a failed hold raises and the event is retried.
    checked = ctx.invoices.check(invoice.id)
    tenant = ctx.tenant_for_customer(invoice.customer_id)
    return (f"tenant {tenant.tenant_id}: usage up to {invoice.period_end.isoformat()} flushed "
            f"for draft invoice {invoice.id}; {checked}")


def handle_invoice_finalized(ctx: HandlerContext, event: InboxEvent) -> str:
    """An emailed invoice (collection send_invoice) is final: email it to the tenant with its
    hosted page and due date, once per invoice. A charged invoice needs no email here."""
    invoice = ctx.stripe.retrieve_invoice(event.object_id)
    # A renewal that finalized before meterbill checked it is counted and alerted, once.
    unchecked = ctx.invoices.unchecked(invoice, event.created)
    if invoice.collection_method != "send_invoice":
        return (f"invoice {invoice.id} is charged automatically; nothing to email"
                + ("; it was finalized before meterbill could check it" if unchecked else ""))
    if invoice.status != "open" or not invoice.hosted_invoice_url:
        return f"invoice {invoice.id} is {invoice.status}; nothing to email"
    tenant = ctx.tenant_for_customer(invoice.customer_id)
    due = invoice.due_date.isoformat() if invoice.due_date else None
    facts = {"email": tenant.email, "tenant_name": tenant.name or tenant.tenant_id,
             "amount_due": invoice.amount_due, "currency": invoice.currency,
             "invoice_url": invoice.hosted_invoice_url, "due_date": due,
             "invoice_id": invoice.id, "invoice_number": invoice.number,
             "customer_id": invoice.customer_id, "plan": tenant.current_plan}
    added = ctx.notice(kind="invoice_sent", dedupe_key=f"invoice_sent:{invoice.id}",
                       tenant_id=tenant.tenant_id, event_id=event.id, facts=facts,
                       detail=f"Invoice {invoice.id} emailed, due {due}.")
    return (f"tenant {tenant.tenant_id}: invoice {invoice.id} due {due} "
            f"{'emailed' if added else 'already emailed'}")


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
