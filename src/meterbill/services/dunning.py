"""Dunning: what failed payments, recoveries, cancellations and trials do to a tenant.

`DunningService` is the webhook processor's `DunningPort` and the operator's manual trigger.
Each call reads the tenant's dunning state (the newest timeline entry), lets the policy decide
(`domain.dunning.decide`) on the facts re-read from Stripe, and in the caller's transaction:
sets the tenant's access columns from the new state, appends the timeline entry, and hands the
notices due to the `Notifier` (once per tenant, state and invoice: a replayed event records
nothing new).

Access is the narrower of what the subscription's Stripe status allows and what the dunning
state allows; `billing_status` becomes `suspended` while the policy suspends the tenant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from ..adapters.db.models import Tenant, utcnow
from ..adapters.db.notifications import new_notice_ids
from ..adapters.db.repositories import SubscriptionRepository, TenantRepository
from ..adapters.db.session import Database
from ..adapters.db.timeline import TimelineEntry, TimelineRepository
from ..domain.dunning import (
    CANCELED,
    GOOD_STANDING,
    TRIAL_SUSPENDED,
    Decision,
    DunningPolicy,
    DunningState,
    Effects,
    InvoiceFacts,
    NoticeDue,
    Transition,
    decide,
    decide_manual,
)
from ..domain.errors import InvalidInput
from ..domain.policies import access_for, is_live
from .notify_ports import Notice, Notifier
from .ports import SubscriptionRecord
from .tenants import unknown_tenant
from .views import _View

if TYPE_CHECKING:
    from .webhooks.context import HandlerContext, InboxEvent
    from .webhooks.ports import InvoiceRecord

log = logging.getLogger("meterbill.dunning")

Clock = Callable[[], datetime]
# Billing statuses a payment returns to active.
_RECOVERS_FROM = frozenset({"past_due", "unpaid", "incomplete", "suspended"})
_ENDED = frozenset({"canceled", "incomplete_expired"})
_RANK = {"none": 0, "reduced": 1, "full": 2}
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


def dunning_state(session: Session, tenant: Tenant) -> DunningState:
    """The tenant's dunning state: the newest timeline entry (good standing without one)."""
    latest = TimelineRepository(session).latest(tenant.tenant_id)
    if latest is None:
        return DunningState(GOOD_STANDING, tenant.payment_failures or 0, None)
    return DunningState(latest.to_state, tenant.payment_failures or 0, latest.invoice_id)


class DunningService:
    def __init__(self, db: Database, policy: DunningPolicy, notifier: Notifier, *,
                 clock: Clock = utcnow,
                 on_notices: Callable[[Sequence[int]], object] | None = None) -> None:
        self.db = db
        self.policy = policy
        self.notifier = notifier
        self.clock = clock
        # Called with the ids of the notices a manual step recorded, after its commit (the
        # webhook processor does the same for handlers).
        self.on_notices = on_notices

    # --- the DunningPort (inside a webhook handler's transaction) ----------------------------

    def on_invoice(self, ctx: HandlerContext, event: InboxEvent, tenant: Tenant,
                   invoice: InvoiceRecord) -> str:
        current = dunning_state(ctx.session, tenant)
        facts = self._facts(ctx, tenant, invoice, current)
        decision = decide(self.policy, current, facts)
        if invoice.status == "paid":
            self._record_payment(tenant, invoice)
        self._apply(ctx.session, tenant, current, decision, cause="webhook", event_id=event.id,
                    invoice=invoice, amount=_amount(invoice), currency=invoice.currency)
        return self._note(tenant, current, decision)

    def on_subscription(self, ctx: HandlerContext, event: InboxEvent, tenant: Tenant,
                        record: SubscriptionRecord, follows: bool) -> str | None:
        if not follows:
            return None
        current = dunning_state(ctx.session, tenant)
        if record.status in _ENDED:
            return self._canceled(ctx.session, tenant, current, record, event.id)
        if record.status == "paused" and current.state != TRIAL_SUSPENDED:
            # Stripe pauses a trial that ended without a payment method (end_behavior pause).
            decision = Decision(
                DunningState(TRIAL_SUSPENDED, 0, record.latest_invoice),
                Transition(current.state, TRIAL_SUSPENDED, "trial_suspension",
                           f"subscription {record.id} paused: the trial ended without a "
                           "payment method"),
                (NoticeDue(self.policy.trial.suspended_notice, TRIAL_SUSPENDED),)
                if self.policy.trial.suspended_notice else ())
            self._apply(ctx.session, tenant, current, decision, cause="webhook",
                        event_id=event.id, invoice=None, amount=0, currency="usd",
                        subscription=record)
            return self._note(tenant, current, decision)
        if current.state == CANCELED and is_live(record.status):
            decision = Decision(DunningState(), Transition(
                CANCELED, GOOD_STANDING, "resubscribed",
                f"new subscription {record.id} ({record.status})"))
            self._apply(ctx.session, tenant, current, decision, cause="webhook",
                        event_id=event.id, invoice=None, amount=0, currency="usd")
            return self._note(tenant, current, decision)
        if self.policy.is_dunning(current.state) and record.latest_invoice:
            # The subscription copy just reset the access columns from Stripe's status: decide
            # again on its latest invoice, which keeps the step or (paid meanwhile) recovers.
            invoice = ctx.stripe.retrieve_invoice(record.latest_invoice)
            if invoice.status != "draft":
                return self.on_invoice(ctx, event, tenant, invoice)
            self._set_access(ctx.session, tenant, self.policy.effects_of(current.state))
        return None

    def on_trial_will_end(self, ctx: HandlerContext, event: InboxEvent, tenant: Tenant,
                          record: SubscriptionRecord) -> str:
        kind = self.policy.trial.reminder_notice
        ends = record.trial_end.isoformat() if record.trial_end else "soon"
        if kind is None:
            return f"tenant {tenant.tenant_id}: trial ends {ends}; the policy sends no reminder"
        stamp = int(record.trial_end.timestamp()) if record.trial_end else 0
        notice = self._notice(
            tenant, NoticeDue(kind, "trial_ending"), event_id=event.id,
            invoice=None, amount=0, currency="usd", subscription=record,
            dedupe_key=f"trial_will_end:{record.id}:{stamp}",
            detail=f"Trial of subscription {record.id} ends {ends} and no payment method is "
                   "on file; ask the customer to add one.")
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
            decision = decide_manual(self.policy, current, failure_count, self.clock())
            notices = self._apply(session, tenant, current, decision, cause="manual",
                                  event_id=None, invoice=None, amount=invoice_amount,
                                  currency=currency, invoice_key=invoice_id or "manual")
            access = _effective(tenant)
            recorded = list(new_notice_ids(session))
            result = ManualResult(
                tenant_id=tenant_id, from_state=current.state, to_state=decision.state.state,
                failures=decision.state.failures, changed=decision.transition is not None,
                notices=tuple(notices), access=access.access,
                rate_limit_multiplier=tenant.rate_limit_multiplier,
                detail=decision.note or "")
        if recorded and self.on_notices is not None:
            self.on_notices(recorded)
        return result

    def timeline(self, tenant_id: str, limit: int = 100) -> list[TimelineView]:
        with self.db.session() as session:
            if TenantRepository(session).get(tenant_id) is None:
                raise unknown_tenant(tenant_id)
            return [timeline_view(r) for r in TimelineRepository(session).for_tenant(
                tenant_id, limit)]

    def state_of(self, tenant_id: str) -> str:
        with self.db.session() as session:
            tenant = TenantRepository(session).get(tenant_id)
            if tenant is None:
                raise unknown_tenant(tenant_id)
            return dunning_state(session, tenant).state

    # --- the work ----------------------------------------------------------------------------

    def _facts(self, ctx: HandlerContext, tenant: Tenant, invoice: InvoiceRecord,
               current: DunningState) -> InvoiceFacts:
        failing = invoice.status == "open" and invoice.attempt_count > 0
        decline = None
        if failing and self.policy.hard_decline_codes and self.policy.decline_jump_to:
            decline = ctx.stripe.decline_code(invoice.id)
        trial_ended, now = None, self.clock()
        if failing and self.policy.rank(current.state) == 0:
            trial_ended = self._trial_ended_without_card(ctx, invoice)
            if trial_ended is not None:  # the grace period runs on Stripe's clock
                now = ctx.stripe.clock_time(invoice.customer_id) or now
        return InvoiceFacts(invoice.id, invoice.status, invoice.attempt_count, now,
                            decline_code=decline,
                            next_payment_attempt=invoice.next_payment_attempt,
                            trial_ended_at=trial_ended)

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

    def _canceled(self, session: Session, tenant: Tenant, current: DunningState,
                  record: SubscriptionRecord, event_id: str) -> str | None:
        if current.state == CANCELED:
            return None
        ended = record.canceled_at.isoformat() if record.canceled_at else "now"
        notices = (NoticeDue(self.policy.cancellation_notice, CANCELED),) \
            if self.policy.cancellation_notice else ()
        decision = Decision(DunningState(CANCELED, 0, None), Transition(
            current.state, CANCELED, "cancellation",
            f"subscription {record.id} {record.status} in Stripe ({ended}); access off"),
            notices)
        self._apply(session, tenant, current, decision, cause="webhook", event_id=event_id,
                    invoice=None, amount=0, currency="usd", subscription=record,
                    invoice_key=record.id)
        return self._note(tenant, current, decision)

    def _apply(self, session: Session, tenant: Tenant, current: DunningState,
               decision: Decision, *, cause: str, event_id: str | None,
               invoice: InvoiceRecord | None, amount: int, currency: str,
               subscription: SubscriptionRecord | None = None,
               invoice_key: str | None = None) -> list[str]:
        """Write the decision onto the tenant, the timeline and the outbox; the notices
        recorded now (not before)."""
        new = decision.state
        tenant.payment_failures = new.failures
        self._set_access(session, tenant, self.policy.effects_of(new.state))
        tenant.updated_at = utcnow()
        if decision.transition is not None:
            t = decision.transition
            TimelineRepository(session).add(TimelineEntry(
                tenant_id=tenant.tenant_id, at=self.clock(), from_state=t.from_state,
                to_state=t.to_state, step=t.step, cause=cause, event_id=event_id,
                invoice_id=invoice.id if invoice else new.invoice_id,
                failures=invoice.attempt_count if invoice else new.failures, detail=t.detail))
            log.info("tenant %s: %s → %s (%s): %s", tenant.tenant_id, t.from_state, t.to_state,
                     cause, t.detail)
        recorded = []
        key = invoice_key or (invoice.id if invoice else new.invoice_id) or "none"
        for due in decision.notices:
            notice = self._notice(
                tenant, due, event_id=event_id, invoice=invoice, amount=amount,
                currency=currency, subscription=subscription,
                dedupe_key=f"dunning:{tenant.tenant_id}:{due.state}:{key}",
                detail=decision.transition.detail if decision.transition else due.kind)
            if self.notifier.enqueue(session, notice):
                recorded.append(due.kind)
        return recorded

    def _set_access(self, session: Session, tenant: Tenant, effects: Effects | None) -> None:
        """Access = the narrower of the Stripe status's and the dunning state's."""
        if effects is not None and effects.suspended and is_live(tenant.billing_status):
            tenant.billing_status = "suspended"
            tenant.suspended_at = tenant.suspended_at or self.clock()
        elif tenant.billing_status == "suspended":
            # Back to Stripe's status, as our copy of the subscription last saw it.
            row = (SubscriptionRepository(session).get(tenant.stripe_subscription_id)
                   if tenant.stripe_subscription_id else None)
            tenant.billing_status = row.status if row is not None else "past_due"
        if effects is None or not effects.suspended:
            tenant.suspended_at = None
        tenant.soft_suspended = bool(effects and effects.soft_suspended)
        status = access_for(tenant.billing_status)
        if effects is not None and _RANK[effects.access] < _RANK[status.access]:
            tenant.api_access_enabled = effects.access != "none"
            tenant.rate_limit_multiplier = effects.rate_limit_multiplier
        else:
            tenant.api_access_enabled = status.api_access_enabled
            tenant.rate_limit_multiplier = status.rate_limit_multiplier

    def _record_payment(self, tenant: Tenant, invoice: InvoiceRecord) -> None:
        if invoice.paid_at and (tenant.last_payment_date is None
                                or invoice.paid_at > tenant.last_payment_date):
            tenant.last_payment_date = invoice.paid_at
        if tenant.billing_status in _RECOVERS_FROM:
            tenant.billing_status = "active"

    def _notice(self, tenant: Tenant, due: NoticeDue, *, event_id: str | None,
                invoice: InvoiceRecord | None, amount: int, currency: str,
                subscription: SubscriptionRecord | None, dedupe_key: str,
                detail: str) -> Notice:
        trial_end = subscription.trial_end if subscription else None
        facts: dict[str, Any] = {
            "tenant_name": tenant.name or tenant.tenant_id,
            "email": tenant.email,
            "amount_due": amount,
            "currency": currency,
            "invoice_id": invoice.id if invoice else None,
            "invoice_url": invoice.hosted_invoice_url if invoice else None,
            "attempt_count": invoice.attempt_count if invoice else tenant.payment_failures,
            "next_step": None,
            "next_step_at": invoice.next_payment_attempt if invoice else None,
            "suspension_at": None,
            "customer_id": tenant.stripe_customer_id,
            "plan": tenant.current_plan,
            "trial_end": trial_end,
        }
        if invoice is not None and invoice.status == "paid":
            facts["amount_paid"] = invoice.amount_paid
        facts.update(due.facts)
        return Notice(kind=due.kind, dedupe_key=dedupe_key, tenant_id=tenant.tenant_id,
                      detail=detail, facts=_iso(facts), event_id=event_id)

    def _note(self, tenant: Tenant, current: DunningState, decision: Decision) -> str:
        if decision.transition is None:
            return (f"tenant {tenant.tenant_id}: {decision.note or 'no change'}; "
                    f"stays {current.state}")
        t = decision.transition
        return f"tenant {tenant.tenant_id}: {t.from_state} → {t.to_state}: {t.detail}"


def _amount(invoice: InvoiceRecord) -> int:
    return invoice.amount_paid if invoice.status == "paid" and invoice.amount_paid \
        else invoice.amount_due


def _iso(facts: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in facts.items()}


def _effective(tenant: Tenant) -> Any:
    return access_for(tenant.billing_status, soft_suspended=tenant.soft_suspended,
                      api_access_enabled=tenant.api_access_enabled)


def _locked_tenant(session: Session, tenant_id: str) -> Tenant:
    """The tenant's row, locked until commit, its `state_version` moved on: a manual step and
    a webhook handler of the same tenant take turns (a handler that read the tenant before
    this commits runs again on the new state; webhooks/context.py)."""
    tenant = TenantRepository(session).get(tenant_id)
    if tenant is None:
        raise unknown_tenant(tenant_id)
    TenantRepository(session).lock(tenant)
    return tenant
