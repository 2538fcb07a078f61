"""`customer.subscription.trial_will_end` (three days before): a reminder when the tenant has
no payment method on file (the dunning port's `trial_ending_no_payment_method` notice).

Re-read first: a subscription that has meanwhile converted, been canceled or got a card needs
no reminder. The notice is keyed by subscription and trial end, so replays add nothing. What
happens when the trial ends without a card is the dunning policy's `[trial]` rule.
"""

from __future__ import annotations

from ..context import HandlerContext, InboxEvent


def handle_trial_will_end(ctx: HandlerContext, event: InboxEvent) -> str:
    tenant = ctx.tenant_for_customer(event.customer_id)
    record = ctx.stripe.retrieve_subscription(event.object_id)
    if record.status != "trialing" or record.trial_end is None:
        return f"subscription {record.id} is {record.status}; no reminder"
    if record.default_payment_method or ctx.stripe.payment_method_on_file(record.customer_id):
        return f"tenant {tenant.tenant_id} has a payment method on file; no reminder"
    return ctx.dunning.on_trial_will_end(ctx, event, tenant, record)
