"""The one writer of a tenant's access, and the one place that records its changes.

`TenantAccessService.apply` is the only code that writes the tenant row's access columns
(`billing_status`, `soft_suspended`, `api_access_enabled`, `rate_limit_multiplier`, with
`suspended_at` and `payment_failures`). Its callers (the dunning service for webhooks and the
manual trigger, the subscription service for API and CLI requests) gather the facts, and it:

1. decides access with `domain.access.decide_access`;
2. settles the record of the change (`domain.access.settle`): the timeline transition and
   the notices due, once per (tenant, state, invoice or subscription);
3. writes the columns, appends the timeline entry, records the notices and, when the access
   level or multiplier changed and ACCESS_WEBHOOK_URL is set, the outgoing
   `tenant.access_changed` row, all in the caller's transaction.

Readers (the tenant summary, the entitlement) decide with the same function on the same stored
facts (`facts`), so they always agree with the columns this writes and with the timeline.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...adapters.db.models import Tenant
from ...adapters.db.repositories import SubscriptionRepository
from ...adapters.db.session import DbSession
from ...adapters.db.timeline import TimelineEntry, TimelineRepository
from ...domain.access import AccessDecision, AccessFacts, decide_access, settle
from ...domain.clock import Clock, utcnow
from ...domain.dunning import GOOD_STANDING, Decision, DunningPolicy, DunningState, NoticeDue
from ...ports.metrics import metrics
from ...ports.notify import Notice, Notifier
from ...ports.stripe import SubscriptionRecord
from ...ports.webhooks import InvoiceRecord
from ..notifications.access_webhooks import record_access_change, stored_access

log = logging.getLogger("meterbill.access")


@dataclass(frozen=True)
class Cause:
    """Why access is being decided, for the timeline and the notices' facts."""

    kind: str  # webhook, manual (the operator's dunning trigger), request (API, CLI) or job
    event_id: str | None = None
    invoice: InvoiceRecord | None = None  # the deciding invoice, as Stripe has it now
    subscription: SubscriptionRecord | None = None
    amount: int = 0  # cents, for the notices
    currency: str = "usd"
    invoice_key: str | None = None  # the notices' once-only key (manual steps: "manual")


@dataclass(frozen=True)
class AccessChange:
    from_state: str
    decision: AccessDecision
    record: Decision  # the new dunning state, its transition (None: unchanged) and notices
    notices: tuple[str, ...]  # kinds recorded now (a replay records none)
    access_changed: bool

    @property
    def note(self) -> str:
        t = self.record.transition
        if t is None:
            return f"{self.record.note or 'no change'}; stays {self.from_state}"
        return f"{t.from_state} → {t.to_state}: {t.detail}"


def dunning_state(session: DbSession, tenant: Tenant) -> DunningState:
    """The tenant's dunning state: the newest timeline entry (good standing without one)."""
    latest = TimelineRepository(session).latest(tenant.tenant_id)
    if latest is None:
        return DunningState(GOOD_STANDING, tenant.payment_failures or 0, None)
    return DunningState(latest.to_state, tenant.payment_failures or 0, latest.invoice_id)


class TenantAccessService:
    def __init__(self, policy: DunningPolicy, notifier: Notifier, *, clock: Clock = utcnow,
                 access_events: bool = False) -> None:
        self.policy = policy
        self.notifier = notifier
        self.clock = clock
        # Record `tenant.access_changed` rows (only when ACCESS_WEBHOOK_URL is set).
        self.access_events = access_events

    def facts(self, session: DbSession, tenant: Tenant,
              dunning: DunningState | None = None) -> AccessFacts:
        """The stored facts: the tenant's current subscription as our copy has it, and its
        dunning state (`dunning`, when the caller just decided a new one)."""
        row = (SubscriptionRepository(session).get(tenant.stripe_subscription_id)
               if tenant.stripe_subscription_id else None)
        return AccessFacts(
            subscription_status=row.status if row is not None else "none",
            cancel_at_period_end=bool(row is not None and row.cancel_at_period_end),
            dunning=dunning if dunning is not None else dunning_state(session, tenant),
            subscription_id=row.id if row is not None else None)

    def current(self, session: DbSession, tenant: Tenant) -> AccessDecision:
        """What the tenant may use now (the readers' answer)."""
        return decide_access(self.policy, self.facts(session, tenant))

    def apply(self, session: DbSession, tenant: Tenant, facts: AccessFacts, cause: Cause,
              proposed: Decision | None = None,
              current: DunningState | None = None) -> AccessChange:
        """Decide on `facts` and write the result; `proposed` is the dunning policy's (or the
        operator's) decision that `facts.dunning` comes from, `current` the dunning state the
        caller read in this turn (read here when not given). The caller owns the transaction
        and has taken its turn on the tenant (a locked row, or the handler's version claim)."""
        current = current if current is not None else dunning_state(session, tenant)
        decision = decide_access(self.policy, facts)
        record = settle(self.policy, current, facts, decision, proposed)
        before = stored_access(tenant)
        now = self.clock()
        tenant.billing_status = decision.billing_status
        tenant.api_access_enabled = decision.api_access_enabled
        tenant.soft_suspended = decision.soft_suspended
        tenant.rate_limit_multiplier = decision.rate_limit_multiplier
        tenant.suspended_at = (tenant.suspended_at or now) \
            if decision.billing_status == "suspended" else None
        tenant.payment_failures = record.state.failures
        tenant.updated_at = now
        # A transition the facts forced (cancellation, a paused trial, a new subscription) is
        # about the subscription, not an invoice: its key and facts are the same whichever
        # event found it first.
        by_status = proposed is None or record is not proposed
        invoice = None if by_status and record.transition is not None else cause.invoice
        if record.transition is not None:
            t = record.transition
            metrics.count("dunning_transitions", from_state=t.from_state, to_state=t.to_state)
            TimelineRepository(session).add(TimelineEntry(
                tenant_id=tenant.tenant_id, at=now, from_state=t.from_state,
                to_state=t.to_state, step=t.step, cause=cause.kind, event_id=cause.event_id,
                invoice_id=invoice.id if invoice else record.state.invoice_id,
                failures=invoice.attempt_count if invoice else record.state.failures,
                detail=t.detail))
            log.info("tenant %s: %s → %s (%s): %s", tenant.tenant_id, t.from_state,
                     t.to_state, cause.kind, t.detail)
        key = (facts.subscription_id if by_status else None) or cause.invoice_key or (
            invoice.id if invoice else record.state.invoice_id) or "none"
        recorded = []
        for due in record.notices:
            notice = self._notice(tenant, due, cause, invoice,
                                  dedupe_key=f"dunning:{tenant.tenant_id}:{due.state}:{key}",
                                  detail=record.transition.detail if record.transition
                                  else due.kind)
            if self.notifier.enqueue(session, notice):
                recorded.append(due.kind)
        changed = before != (decision.access, decision.rate_limit_multiplier)
        if changed and self.access_events:
            record_access_change(session, tenant, before, decision, now)
        return AccessChange(current.state, decision, record, tuple(recorded), changed)

    def _notice(self, tenant: Tenant, due: NoticeDue, cause: Cause,
                invoice: InvoiceRecord | None, *, dedupe_key: str, detail: str) -> Notice:
        subscription = cause.subscription
        facts: dict[str, Any] = {
            "tenant_name": tenant.name or tenant.tenant_id,
            "email": tenant.email,
            "amount_due": cause.amount if invoice is cause.invoice else 0,
            "currency": cause.currency,
            "invoice_id": invoice.id if invoice else None,
            "invoice_url": invoice.hosted_invoice_url if invoice else None,
            "attempt_count": invoice.attempt_count if invoice else tenant.payment_failures,
            "next_step": None,
            "next_step_at": invoice.next_payment_attempt if invoice else None,
            "suspension_at": None,
            "customer_id": tenant.stripe_customer_id,
            "plan": tenant.current_plan,
            "trial_end": subscription.trial_end if subscription else None,
        }
        if invoice is not None and invoice.status == "paid":
            facts["amount_paid"] = invoice.amount_paid
        facts.update(due.facts)
        return Notice(kind=due.kind, dedupe_key=dedupe_key, tenant_id=tenant.tenant_id,
                      detail=detail, facts=_iso(facts), event_id=cause.event_id,
                      at=self.clock())


def _iso(facts: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in facts.items()}
