"""`customer.subscription.trial_will_end` (three days before): a reminder when the tenant has
no payment method on file, recorded as a billing notice (emails are the dunning issue's).

Re-read first: a subscription that has meanwhile converted, been canceled or got a card needs
no reminder. The notice is keyed by subscription and trial end, so replays add nothing.
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
    ends = record.trial_end.isoformat()
    added = ctx.notice(
        kind="trial_ending_no_payment_method",
        dedupe_key=f"trial_will_end:{record.id}:{int(record.trial_end.timestamp())}",
        detail=f"Trial of subscription {record.id} ends {ends} and no payment method is on "
               "file; ask the customer to add one.",
        tenant_id=tenant.tenant_id, event_id=event.id)
    return (f"tenant {tenant.tenant_id}: trial ends {ends} without a payment method; reminder "
            + ("recorded" if added else "already recorded"))
