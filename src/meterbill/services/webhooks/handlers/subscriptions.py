"""`customer.subscription.created/updated/deleted`: copy Stripe's CURRENT subscription onto our
row and the tenant's, then let dunning weigh in.

The event's own copy is only a hint of which subscription changed: the handler re-reads it, so
an `updated` event that arrives after a newer change (or after the deletion) writes the newer
state, and handling the same event twice writes the same thing twice.

Access ends when Stripe ends the subscription: `deleted` comes at once for an immediate cancel
and at the period end for `cancel_at_period_end` (until then the status stays active and so
does access). The dunning port records the cancellation (timeline, notice), keeps a dunning
step in force over the status copy (a suspended tenant stays suspended when its subscription
turns `past_due` or `unpaid`), and notices a trial paused for want of a payment method.
"""

from __future__ import annotations

from ....adapters.db.models import Subscription, Tenant, utcnow
from ....adapters.db.repositories import SubscriptionRepository
from ...ports import SubscriptionRecord
from ...subscriptions import apply_subscription_record
from ..context import HandlerContext, InboxEvent


def handle_subscription_event(ctx: HandlerContext, event: InboxEvent) -> str:
    tenant = ctx.tenant_for_customer(event.customer_id)
    record = ctx.stripe.retrieve_subscription(event.object_id)
    note = sync_subscription(ctx, tenant, record)
    follows = tenant.stripe_subscription_id == record.id
    dunning = ctx.dunning.on_subscription(ctx, event, tenant, record, follows)
    return f"{note}; {dunning}" if dunning else note


def plan_of(ctx: HandlerContext, record: SubscriptionRecord, fallback: str | None) -> str | None:
    """The plan key: what meterbill wrote in the metadata, else the base price's lookup key."""
    key = record.metadata.get("plan_type")
    if key and key in ctx.catalog.keys():
        return key
    for item in record.items:
        plan = ctx.catalog.plan_for_lookup_key(item.price_lookup_key or "")
        if plan is not None:
            return plan.key
    return fallback


def sync_subscription(ctx: HandlerContext, tenant: Tenant, record: SubscriptionRecord) -> str:
    repo = SubscriptionRepository(ctx.session)
    row = repo.get(record.id)
    plan = plan_of(ctx, record, row.plan_type if row else None)
    if row is None:
        if plan is None:
            return f"subscription {record.id} has no meterbill plan; left alone"
        row = repo.add(Subscription(
            id=record.id, tenant_id=tenant.tenant_id, customer_id=record.customer_id,
            plan_type=plan, status=record.status, revision=0, cancel_at_period_end=False,
            created_at=utcnow(), updated_at=utcnow()))
    elif plan is not None:
        row.plan_type = plan
    if apply_subscription_record(row, tenant, record):
        return (f"tenant {tenant.tenant_id}: subscription {record.id} {record.status}, plan "
                f"{row.plan_type}, cancel_at_period_end={record.cancel_at_period_end}")
    return (f"subscription {record.id} {record.status} recorded; tenant {tenant.tenant_id} "
            f"follows {tenant.stripe_subscription_id}")
