"""`customer.subscription.created/updated/deleted`: copy Stripe's CURRENT subscription onto our
row and decide the tenant's access on it.

The event's own copy is only a hint of which subscription changed: the handler re-reads it, so
an `updated` event that arrives after a newer change (or after the deletion) writes the newer
state, and handling the same event twice writes the same thing twice.

Access ends when Stripe ends the subscription: `deleted` comes at once for an immediate cancel
and at the period end for `cancel_at_period_end` (until then the status stays active and so
does access). The dunning port stores the subscription and decides on every fact at once
(services/access/dunning.py): the status, and while a payment is outstanding the latest
invoice, so a subscription event and a payment event about the same change leave the same
record.
"""

from __future__ import annotations

from ..context import HandlerContext, InboxEvent


def handle_subscription_event(ctx: HandlerContext, event: InboxEvent) -> str:
    tenant = ctx.tenant_for_customer(event.customer_id)
    record = ctx.stripe.retrieve_subscription(event.object_id)
    return ctx.dunning.on_subscription(ctx, event, tenant, record)
