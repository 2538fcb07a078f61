"""Dunning: what failed payments, recoveries, cancellations and trials do to a tenant.

`DunningService` is the webhook processor's `DunningPort` and the operator's manual trigger.
Each call reads the tenant's dunning state (the newest timeline entry), lets the policy decide
(`domain.dunning.decide`) on the deciding invoice as re-read from Stripe, and hands the result
with the subscription's status to `TenantAccessService.apply` (tenant_access.py), which decides
the tenant's access on all the facts at once and writes it, the timeline entry and the notices
in the caller's transaction (once per tenant, state and invoice: a replayed event records
nothing new).

A payment event and a subscription event gather the same facts (the subscription as Stripe has
it, and while a payment is outstanding its latest invoice), so either one, in any order, leaves
the same record; see domain/access.py for which fact wins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ...adapters.db.models import Tenant
from ...adapters.db.notifications import new_notice_ids
from ...adapters.db.repositories import TenantRepository
from ...adapters.db.session import Database, DbSession
from ...adapters.db.timeline import TimelineEntry, TimelineRepository
from ...domain.clock import Clock, utcnow
from ...domain.dunning import (
    DunningPolicy,
    DunningState,
    InvoiceFacts,
    decide,
    decide_manual,
)
from ...domain.errors import InvalidInput
from ...ports.notify import Notice, Notifier
from ...ports.stripe import SubscriptionRecord
from ...ports.webhooks import InvoiceRecord
from ..billing.subscriptions import follows, store_subscription
from ..billing.tenants import unknown_tenant
from ..views import _View
from .writer import AccessChange, Cause, TenantAccessService, dunning_state

if TYPE_CHECKING:
    from ..webhooks.context import HandlerContext, InboxEvent

log = logging.getLogger("meterbill.dunning")

# Statuses of a subscription whose latest invoice may be failing: a subscription event reads it.
_OWING = frozenset({"past_due", "unpaid", "incomplete"})
# A trial's first invoice covers the trial: its period ends when the trial does.
_TRIAL_MATCH = timedelta(minutes=5)


@dataclass(frozen=True)
class TimelineView(_View):
    at: datetime
    from_state: str
    to_state: str
    step: str
    cause: str
    event_id: str | None
    invoice_id: str | None
    failures: int
    detail: str


@dataclass(frozen=True)
class ManualResult(_View):
    tenant_id: str
    from_state: str
    to_state: str
    failures: int
    changed: bool
    notices: tuple[str, ...]
    access: str
    rate_limit_multiplier: float
    detail: str


def timeline_view(row: TimelineEntry) -> TimelineView:
    return TimelineView(at=row.at, from_state=row.from_state, to_state=row.to_state,
                        step=row.step, cause=row.cause, event_id=row.event_id,
                        invoice_id=row.invoice_id, failures=row.failures, detail=row.detail)


class DunningService:
    def __init__(self, db: Database, policy: DunningPolicy, notifier: Notifier,
                 access: TenantAccessService, *, clock: Clock = utcnow,
                 on_notices: Callable[[Sequence[int]], object] | None = None) -> None:
        self.db = db
        self.policy = policy
        self.notifier = notifier
        self.access = access  # the one writer of the tenant's access
        self.clock = clock
        # Called with the ids of the notices a manual step recorded, after its commit (the
        # webhook processor does the same for handlers).
        self.on_notices = on_notices

    # --- the DunningPort (inside a webhook handler's transaction) ----------------------------

    def on_invoice(self, ctx: HandlerContext, event: InboxEvent, tenant: Tenant,
                   invoice: InvoiceRecord, subscription: SubscriptionRecord | None) -> str:
        # An invoice of a subscription the tenant no longer follows decides nothing.
        deciding = subscription is None or follows(tenant, subscription.id)
        return self._settle(ctx, Cause("webhook", event.id), tenant, subscription,
                            invoice if deciding else None)[0]

    def on_subscription(self, ctx: HandlerContext, event: InboxEvent, tenant: Tenant,
                        record: SubscriptionRecord) -> str:
        return self._settle(ctx, Cause("webhook", event.id), tenant, record,
                            self._latest_invoice(ctx, tenant, record))[0]

    def on_overdue_check(self, ctx: HandlerContext, tenant: Tenant, invoice: InvoiceRecord,
                         subscription: SubscriptionRecord | None) -> tuple[str, bool]:
        """The `overdue-invoices` job's turn on `tenant`, outside a webhook: the same decision
        as `on_invoice` (Stripe's `invoice.overdue`), recorded with the cause `job`. Returns
        the note and whether the tenant moved to another dunning state."""
        deciding = subscription is None or follows(tenant, subscription.id)
        note, change = self._settle(ctx, Cause("job"), tenant, subscription,
                                    invoice if deciding else None)
        return note, change.record.transition is not None

    def on_trial_will_end(self, ctx: HandlerContext, event: InboxEvent, tenant: Tenant,
                          record: SubscriptionRecord) -> str:
        kind = self.policy.trial.reminder_notice
        ends = record.trial_end.isoformat() if record.trial_end else "soon"
        if kind is None:
            return f"tenant {tenant.tenant_id}: trial ends {ends}; the policy sends no reminder"
        stamp = int(record.trial_end.timestamp()) if record.trial_end else 0
        facts = {"tenant_name": tenant.name or tenant.tenant_id, "email": tenant.email,
                 "amount_due": 0, "currency": "usd", "invoice_id": None, "invoice_url": None,
                 "attempt_count": tenant.payment_failures, "next_step": None,
                 "next_step_at": None, "suspension_at": None,
                 "customer_id": tenant.stripe_customer_id, "plan": tenant.current_plan,
                 "trial_end": record.trial_end.isoformat() if record.trial_end else None}
        notice = Notice(
            kind=kind, dedupe_key=f"trial_will_end:{record.id}:{stamp}",
            tenant_id=tenant.tenant_id, facts=facts, event_id=event.id,
            detail=f"Trial of subscription {record.id} ends {ends} and no payment method is "
                   "on file; ask the customer to add one.")
        ctx.claim()  # the notice is this handler's first write
        added = self.notifier.enqueue(ctx.session, notice)
        return (f"tenant {tenant.tenant_id}: trial ends {ends} without a payment method; "
                f"reminder {'recorded' if added else 'already recorded'}")

    # --- the operator's trigger and the timeline ----------------------------------------------

    def process_manual(self, tenant_id: str, failure_count: int, invoice_amount: int,
                       currency: str = "usd", invoice_id: str | None = None) -> ManualResult:
        """The seeds' `POST /dunning/process`: apply the policy's step for `failure_count`."""
        if isinstance(failure_count, bool) or not isinstance(failure_count, int) \
                or failure_count < 0:
            raise InvalidInput("failure_count must be a whole number >= 0 (0 restores the "
                               "tenant)", field="failure_count")
        if isinstance(invoice_amount, bool) or not isinstance(invoice_amount, int) \
                or invoice_amount < 0:
            raise InvalidInput("invoice_amount must be whole cents >= 0, e.g. 9900 for $99.00",
                               field="invoice_amount")
        with self.db.session() as session:
            tenant = _locked_tenant(session, tenant_id)
            current = dunning_state(session, tenant)
            proposed = decide_manual(self.policy, current, failure_count, self.clock())
            change = self.access.apply(
                session, tenant, self.access.facts(session, tenant, proposed.state),
                Cause("manual", amount=invoice_amount, currency=currency,
                      invoice_key=invoice_id or "manual"), proposed)
            recorded = list(new_notice_ids(session))
            result = ManualResult(
                tenant_id=tenant_id, from_state=current.state,
                to_state=change.decision.dunning_state, failures=change.record.state.failures,
                changed=change.record.transition is not None, notices=change.notices,
                access=change.decision.access,
                rate_limit_multiplier=change.decision.rate_limit_multiplier,
                detail=change.record.note or "")
        if recorded and self.on_notices is not None:
            self.on_notices(recorded)
        return result

    def timeline(self, tenant_id: str, limit: int = 100) -> list[TimelineView]:
        with self.db.session() as session:
            if TenantRepository(session).get(tenant_id) is None:
                raise unknown_tenant(tenant_id)
            return [timeline_view(r) for r in TimelineRepository(session).for_tenant(
                tenant_id, limit)]

    # --- the work ----------------------------------------------------------------------------

    def _settle(self, ctx: HandlerContext, why: Cause, tenant: Tenant,
                subscription: SubscriptionRecord | None,
                invoice: InvoiceRecord | None) -> tuple[str, AccessChange]:
        """Decide on the subscription and the deciding invoice, both as Stripe has them now:
        every Stripe read first, then this handler's turn on the tenant, then the writes.
        `why` names the caller (a webhook's event, or the job)."""
        current = dunning_state(ctx.session, tenant)
        facts = self._facts(ctx, tenant, invoice, current) if invoice is not None else None
        ctx.claim()
        notes = []
        if subscription is not None:
            notes.append(store_subscription(ctx.session, ctx.catalog, tenant, subscription,
                                            self.clock()))
        proposed = decide(self.policy, current, facts) if facts is not None else None
        if invoice is not None and invoice.status == "paid":
            self._record_payment(tenant, invoice)
        change = self.access.apply(
            ctx.session, tenant, self.access.facts(ctx.session, tenant,
                                                   proposed.state if proposed else None),
            Cause(why.kind, why.event_id, invoice, subscription,
                  _amount(invoice) if invoice else 0, invoice.currency if invoice else "usd"),
            proposed, current)
        notes.append(self._note(tenant, change))
        return "; ".join(notes), change

    def _latest_invoice(self, ctx: HandlerContext, tenant: Tenant,
                        record: SubscriptionRecord) -> InvoiceRecord | None:
        """The invoice a subscription event decides on, as a payment event would: the latest
        one, read only when it can matter (a payment is owed, or dunning is in force)."""
        if not record.latest_invoice or not follows(tenant, record.id):
            return None
        if record.status not in _OWING and not self.policy.is_dunning(
                dunning_state(ctx.session, tenant).state):
            return None
        invoice = ctx.stripe.retrieve_invoice(record.latest_invoice)
        # A draft renewal has not been charged yet: it decides nothing.
        return invoice if invoice.status != "draft" else None

    def _facts(self, ctx: HandlerContext, tenant: Tenant, invoice: InvoiceRecord,
               current: DunningState) -> InvoiceFacts:
        failing = invoice.status == "open" and invoice.attempt_count > 0
        decline = None
        if failing and self.policy.hard_decline_codes and self.policy.decline_jump_to:
            decline = ctx.stripe.decline_code(invoice.id)
        trial_ended, now = None, self.clock()
        emailed = invoice.collection_method == "send_invoice" and invoice.status == "open"
        if emailed:  # days past due count on Stripe's clock (a test clock's in sandbox mode)
            now = ctx.stripe.clock_time(invoice.customer_id) or now
            failing = False
        if failing and self.policy.rank(current.state) == 0:
            trial_ended = self._trial_ended_without_card(ctx, invoice)
            if trial_ended is not None:  # the grace period runs on Stripe's clock
                now = ctx.stripe.clock_time(invoice.customer_id) or now
        return InvoiceFacts(invoice.id, invoice.status, invoice.attempt_count, now,
                            decline_code=decline,
                            next_payment_attempt=invoice.next_payment_attempt,
                            trial_ended_at=trial_ended,
                            amount_paid=invoice.amount_paid if invoice.status == "paid" else None,
                            collection_method=invoice.collection_method,
                            due_date=invoice.due_date)

    def _trial_ended_without_card(self, ctx: HandlerContext,
                                  invoice: InvoiceRecord) -> datetime | None:
        """The trial's end when `invoice` is the first after a trial and no card is on file."""
        if invoice.billing_reason != "subscription_cycle" or not invoice.subscription_id \
                or invoice.period_end is None:
            return None
        record = ctx.stripe.retrieve_subscription(invoice.subscription_id)
        if record.trial_end is None or abs(record.trial_end - invoice.period_end) > _TRIAL_MATCH:
            return None
        if record.default_payment_method or ctx.stripe.payment_method_on_file(
                invoice.customer_id):
            return None
        return record.trial_end

    def _record_payment(self, tenant: Tenant, invoice: InvoiceRecord) -> None:
        if invoice.paid_at and (tenant.last_payment_date is None
                                or invoice.paid_at > tenant.last_payment_date):
            tenant.last_payment_date = invoice.paid_at

    @staticmethod
    def _note(tenant: Tenant, change: AccessChange) -> str:
        return f"tenant {tenant.tenant_id}: {change.note}"


def _amount(invoice: InvoiceRecord) -> int:
    return invoice.amount_paid if invoice.status == "paid" and invoice.amount_paid \
        else invoice.amount_due


def _locked_tenant(session: DbSession, tenant_id: str) -> Tenant:
    """The tenant's row, locked until commit, its `state_version` moved on: a manual step and
    a webhook handler of the same tenant take turns (a handler that read the tenant before
    this commits runs again on the new state; webhooks/context.py)."""
    tenant = TenantRepository(session).get(tenant_id)
    if tenant is None:
        raise unknown_tenant(tenant_id)
    TenantRepository(session).lock(tenant)
    return tenant
