"""`invoice.paid`/`invoice.payment_succeeded`/`invoice.payment_failed`, `invoice.voided`,
`invoice.marked_uncollectible`, and `invoice.overdue` (an emailed invoice unpaid past its due
date: the policy's [overdue] steps, by days past due).

All are decided on what Stripe says NOW, not on which event arrived last: the handler re-reads
the invoice, and when it belongs to a subscription, the subscription's latest invoice (a newer
invoice decides over an older one). A paid (or voided) latest invoice means the tenant is
recovered; an open one that Stripe has tried to charge means a payment failure at its
`attempt_count`. So a `payment_failed` delivered after the `payment_succeeded` for the same
invoice sees a paid invoice and leaves the tenant active, and any order of delivery ends in the
same state. An invoice marked uncollectible stops Stripe's retries but restores nothing: paying
it later (even out of band) sends `invoice.paid`, which does.

What the invoice means for the tenant is the `DunningPort`'s call (services/access/dunning.py: the
policy's steps, the timeline, the notices), on the invoice and the subscription as Stripe has
them now (both come in one request).
"""

from __future__ import annotations

from ....ports.metrics import metrics
from ....ports.stripe import SubscriptionRecord
from ....ports.webhooks import InvoiceRecord
from ..context import HandlerContext, InboxEvent


def current_invoice(ctx: HandlerContext,
                    invoice_id: str) -> tuple[InvoiceRecord, SubscriptionRecord | None]:
    """The invoice that decides the tenant's payment state (the subscription's latest one),
    and its subscription as it is now (None for an invoice without one)."""
    invoice, subscription = ctx.stripe.retrieve_invoice_and_subscription(invoice_id)
    if invoice.subscription_id and subscription is None:  # not expanded: ask for it
        subscription = ctx.stripe.retrieve_subscription(invoice.subscription_id)
    # An emailed invoice still open decides by its own days past due, even when a newer one
    # (not yet due) is the subscription's latest.
    emailed_open = invoice.collection_method == "send_invoice" and invoice.status == "open"
    if subscription is not None and not emailed_open:
        latest = subscription.latest_invoice
        if latest and latest != invoice.id:
            newer = ctx.stripe.retrieve_invoice(latest)
            # A draft renewal has not been charged yet: the last charged invoice still decides.
            if newer.status != "draft":
                invoice = newer
    return invoice, subscription


def handle_payment_event(ctx: HandlerContext, event: InboxEvent) -> str:
    tenant = ctx.tenant_for_customer(event.customer_id)
    invoice, subscription = current_invoice(ctx, event.object_id)
    note = ctx.dunning.on_invoice(ctx, event, tenant, invoice, subscription)
    metrics.count("payments", outcome=event.type.removeprefix("invoice."),
                  attempt=str(min(invoice.attempt_count, 5)))  # 5: five or more
    return (f"invoice {invoice.id} {invoice.status} after {invoice.attempt_count} attempt(s); "
            f"{note}")
