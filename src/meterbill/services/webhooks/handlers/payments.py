"""`invoice.paid`/`invoice.payment_succeeded`/`invoice.payment_failed`, and `invoice.voided` and
`invoice.marked_uncollectible`.

All are decided on what Stripe says NOW, not on which event arrived last: the handler re-reads
the invoice, and when it belongs to a subscription, the subscription's latest invoice (a newer
invoice decides over an older one). A paid (or voided) latest invoice means the tenant is
recovered; an open one that Stripe has tried to charge means a payment failure at its
`attempt_count`. So a `payment_failed` delivered after the `payment_succeeded` for the same
invoice sees a paid invoice and leaves the tenant active, and any order of delivery ends in the
same state. An invoice marked uncollectible stops Stripe's retries but restores nothing: paying
it later (even out of band) sends `invoice.paid`, which does.

What the invoice means for the tenant is the `DunningPort`'s call (services/dunning.py: the
policy's steps, the timeline, the notices). `RecordOnTenant` is a policy-free port that only
records the facts on the tenant row (for tests and tools that wire no policy).
"""

from __future__ import annotations

from ....adapters.db.models import Tenant, utcnow
from ....domain.policies import access_for
from ...ports import SubscriptionRecord
from ..context import HandlerContext, InboxEvent
from ..ports import InvoiceRecord

# Statuses a failed payment moves to past_due, and those a recovery moves back to active.
_FAILS_FROM = frozenset({"active", "trialing", "past_due"})
_RECOVERS_FROM = frozenset({"past_due", "unpaid", "incomplete", "suspended"})


class RecordOnTenant:
    """A `DunningPort` without a policy: failure count, status and access on the tenant row,
    no timeline, no notices."""

    def on_invoice(self, ctx: HandlerContext, event: InboxEvent, tenant: Tenant,
                   invoice: InvoiceRecord) -> str:
        if invoice.status == "paid":
            tenant.payment_failures = 0
            if invoice.paid_at and (tenant.last_payment_date is None
                                    or invoice.paid_at > tenant.last_payment_date):
                tenant.last_payment_date = invoice.paid_at
            if tenant.billing_status in _RECOVERS_FROM:
                _set_status(tenant, "active")
        elif invoice.status == "open" and invoice.attempt_count > 0:
            tenant.payment_failures = invoice.attempt_count
            if tenant.billing_status in _FAILS_FROM:
                _set_status(tenant, "past_due")
        tenant.updated_at = utcnow()
        return f"tenant {tenant.tenant_id}: status {tenant.billing_status}"

    def on_subscription(self, ctx: HandlerContext, event: InboxEvent, tenant: Tenant,
                        record: SubscriptionRecord, follows: bool) -> str | None:
        return None

    def on_trial_will_end(self, ctx: HandlerContext, event: InboxEvent, tenant: Tenant,
                          record: SubscriptionRecord) -> str:
        return f"tenant {tenant.tenant_id}: trial ends soon (no policy wired, no reminder)"


def _set_status(tenant: Tenant, status: str) -> None:
    tenant.billing_status = status
    decision = access_for(status, soft_suspended=tenant.soft_suspended)
    tenant.api_access_enabled = decision.api_access_enabled
    tenant.rate_limit_multiplier = decision.rate_limit_multiplier


def current_invoice(ctx: HandlerContext, invoice_id: str) -> InvoiceRecord:
    """The invoice that decides the tenant's payment state: the subscription's latest one."""
    invoice, subscription = ctx.stripe.retrieve_invoice_and_subscription(invoice_id)
    if invoice.subscription_id and subscription is None:  # not expanded: ask for it
        subscription = ctx.stripe.retrieve_subscription(invoice.subscription_id)
    if subscription is not None:
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
    note = ctx.dunning.on_invoice(ctx, event, tenant, invoice)
    return (f"invoice {invoice.id} {invoice.status} after {invoice.attempt_count} attempt(s); "
            f"{note}")
