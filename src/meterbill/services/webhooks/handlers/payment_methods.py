"""`payment_method.attached`: the tenant now has a payment method on file.

Whether a tenant has one is always asked of Stripe (`TenantService`), so nothing needs caching;
the handler records a notice that dunning can act on (retry an open invoice) if the method is
still attached to the customer when we look.
"""

from __future__ import annotations

from ..context import HandlerContext, InboxEvent


def handle_payment_method_attached(ctx: HandlerContext, event: InboxEvent) -> str:
    tenant = ctx.tenant_for_customer(event.customer_id)
    method = ctx.stripe.retrieve_payment_method(event.object_id)
    if method.customer_id != tenant.stripe_customer_id:
        return f"payment method {method.id} is no longer attached to {event.customer_id}"
    label = f"{method.card_brand} ending {method.card_last4}" if method.card_last4 else method.type
    ctx.notice(kind="payment_method_on_file", dedupe_key=f"payment_method:{method.id}",
               detail=f"Payment method {method.id} ({label}) is on file.",
               tenant_id=tenant.tenant_id, event_id=event.id)
    return f"tenant {tenant.tenant_id}: payment method {method.id} ({label}) on file"
