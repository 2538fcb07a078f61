"""Check a subscription's draft invoice against meterbill's own numbers before Stripe finalizes
it (`invoice.created`, after the period's usage was flushed), and hold it when they differ.

What meterbill knows without asking Stripe: the plan catalog, the subscription's plans (the
plan now, a downgrade waiting for the period end, the last plan change and when), and the
deduplicated usage in its store. From these the domain computes the expected lines
(`domain/invoice_check.py`); Stripe's draft is read once (lines named by their price's plan).
Equal within the tolerance, and no rule fires: recorded `verified`, Stripe finalizes it as
usual. Otherwise the draft is held (`auto_advance=false`, so Stripe never finalizes or charges
it on its own), the review item keeps both versions, and an admin alert says what differs in
one line. The hold is written to Stripe before the row: a failed hold raises, and the webhook
is retried; a retried check after a hold finds the same numbers and holds again (same key).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ...adapters.db.invoice_checks import InvoiceCheck, InvoiceCheckRepository
from ...adapters.db.models import Subscription, Tenant
from ...adapters.db.repositories import SubscriptionRepository, TenantRepository
from ...adapters.db.session import Database
from ...domain.clock import Clock, utcnow
from ...domain.invoice_check import (
    DraftFacts,
    InvoiceLine,
    ReviewRules,
    Segment,
    compare,
    describe,
    expected_lines,
    rule_reasons,
)
from ...domain.money import format_cents
from ...domain.plans import Catalog, Plan
from ...ports.invoices import DraftInvoice, InvoiceDraftsPort
from ...ports.notify import Notifier
from ...ports.usage_store import UsageStore
from ...ports.webhooks import InvoiceRecord
from ..notifications.outbox import admin_alert

log = logging.getLogger("meterbill.invoices")

CHECKED_REASONS = ("subscription_cycle",)  # drafts Stripe leaves open for an hour


@dataclass(frozen=True)
class VerifyOptions:
    tolerance_cents: int = 0
    rules: ReviewRules = ReviewRules()


class UsageStoreSource(Protocol):
    def __call__(self) -> UsageStore: ...


@dataclass(frozen=True)
class Expected:
    lines: tuple[InvoiceLine, ...]
    used: int
    base: Plan | None


def line_dicts(lines: Sequence[InvoiceLine]) -> list[dict[str, Any]]:
    return [{"plan": line.plan, "part": line.part, "quantity": line.quantity,
             "amount": line.amount, "label": line.label, "proration": line.proration,
             "start": line.start.isoformat() if line.start else None,
             "end": line.end.isoformat() if line.end else None} for line in lines]


class InvoiceVerifier:
    def __init__(self, db: Database, drafts: InvoiceDraftsPort, store: UsageStoreSource,
                 catalog: Catalog, notifier: Notifier, options: VerifyOptions, *,
                 clock: Clock = utcnow) -> None:
        self.db = db
        self.drafts = drafts
        self.store = store
        self.catalog = catalog
        self.notifier = notifier
        self.options = options
        self.clock = clock

    # --- invoice.created ----------------------------------------------------------------------

    def check(self, invoice_id: str) -> str:
        """Verify or hold one draft; a note of what was done."""
        with self.db.session() as session:
            done = InvoiceCheckRepository(session).get(invoice_id)
            if done is not None:
                return f"invoice {invoice_id} was already checked: {done.status}"
        draft = self.drafts.retrieve_draft(invoice_id)
        if draft.status != "draft":
            return f"invoice {invoice_id} is already {draft.status}; too late to check it"
        if draft.subscription_id is None or draft.billing_reason not in CHECKED_REASONS:
            return f"invoice {invoice_id} ({draft.billing_reason}) is not a renewal; not checked"
        with self.db.session() as session:
            tenant = TenantRepository(session).by_customer(draft.customer_id)
            sub = SubscriptionRepository(session).get(draft.subscription_id)
            if tenant is None or sub is None:
                return f"invoice {invoice_id}: no meterbill subscription {draft.subscription_id}"
            tenant_id = tenant.tenant_id
            expected = self.expected(draft, tenant, sub)
            checks = InvoiceCheckRepository(session)
            assert draft.period_end is not None
            trailing = checks.earlier_usage(tenant_id, draft.period_end)
            first = not checks.has_earlier(tenant_id, draft.period_end)
        differences = compare(draft.lines, expected.lines, self.options.tolerance_cents)
        facts = DraftFacts(
            tenant_id=tenant_id, total=draft.total, used=expected.used,
            trailing_usage=trailing, first_invoice=first,
            has_proration=any(line.proration for line in draft.lines),
            balance_applied=min(max(-draft.customer_balance, 0), max(draft.total, 0)))
        reasons = list(rule_reasons(self.options.rules, facts))
        names = {plan.key: plan.name for plan in self.catalog}
        month = (draft.period_start or draft.created or self.clock()).strftime("%b")
        if differences:
            summary = describe(tenant_id, month, differences, self._metric(expected),
                               names, draft.currency)
            reasons.insert(0, "numbers differ")
        else:
            plan_name = names.get(expected.base.key, "") if expected.base else ""
            summary = (f"{tenant_id}, {plan_name + ', ' if plan_name else ''}{month}: "
                       f"{format_cents(draft.total, draft.currency)} as expected")
            if reasons:
                summary += "; held: " + "; ".join(reasons)
        held = bool(reasons)
        if held:
            # Stripe first: if this fails the webhook is retried and nothing is recorded.
            self.drafts.hold(invoice_id, idempotency_key=f"invoice-verify:{invoice_id}:hold")
        now = draft.stripe_time or self.clock()
        row = InvoiceCheck(
            invoice_id=invoice_id, tenant_id=tenant_id, customer_id=draft.customer_id,
            subscription_id=draft.subscription_id, period_start=draft.period_start,
            period_end=draft.period_end, currency=draft.currency,
            status="held" if held else "verified", stripe_total=draft.total,
            expected_total=sum(line.amount for line in expected.lines), used=expected.used,
            stripe_lines=json.dumps(line_dicts(draft.lines)),
            expected_lines=json.dumps(line_dicts(expected.lines)),
            reasons=json.dumps(reasons), summary=summary, checked_at=now,
            finalizes_at=draft.automatically_finalizes_at, reminded_at=None, decided_at=None,
            decided_by=None, decision_reason=None, correction_cents=None,
            correction_item_id=None, review_seconds=None)
        with self.db.session() as session:
            added = InvoiceCheckRepository(session).add(row)
            if added and held:
                detail = f"Invoice {invoice_id} held for review: {summary}"
                log.error("ADMIN ALERT: %s", detail)
                self.notifier.enqueue(session, admin_alert(
                    f"invoice_held:{invoice_id}", f"Invoice held for review: {tenant_id}",
                    detail, tenant_id=tenant_id))
        return f"invoice {invoice_id} {'held' if held else 'verified'}: {summary}"

    # --- the invoice-review job: holds whose numbers caught up -------------------------------

    def recheck_held(self) -> dict[str, int]:
        """Compare again every draft held only because the numbers differed; release those that
        agree now (`auto_advance=true`: Stripe finalizes it a grace period later).

        Stripe aggregates meter events asynchronously ("meter event summaries provide an
        eventually consistent view"), so usage flushed just before the check can be missing
        from the first read; late usage a sync sent after the check catches up the same way.
        A hold for a rule, or one whose numbers still differ, stays for a person."""
        with self.db.session() as session:
            held = [(row.invoice_id, row.summary) for row in InvoiceCheckRepository(
                session).held() if json.loads(row.reasons or "[]") == ["numbers differ"]]
        released = 0
        for invoice_id, summary in held:
            draft = self.drafts.retrieve_draft(invoice_id)
            if draft.status != "draft" or draft.subscription_id is None:
                continue  # acted on in Stripe: the reminder job records it
            with self.db.session() as session:
                tenant = TenantRepository(session).by_customer(draft.customer_id)
                sub = SubscriptionRepository(session).get(draft.subscription_id)
                if tenant is None or sub is None:
                    continue
                expected = self.expected(draft, tenant, sub)
            if compare(draft.lines, expected.lines, self.options.tolerance_cents):
                continue
            self.drafts.release(invoice_id,
                                idempotency_key=f"invoice-verify:{invoice_id}:release")
            now = draft.stripe_time or self.clock()
            with self.db.session() as session:
                row = InvoiceCheckRepository(session).get(invoice_id, for_update=True)
                if row is None or row.status != "held":
                    continue
                row.status, row.stripe_total = "verified", draft.total
                row.stripe_lines = json.dumps(line_dicts(draft.lines))
                row.decided_at, row.decided_by = now, "meterbill (re-check)"
                row.decision_reason = f"Stripe's numbers now agree; held as: {summary}"
                row.review_seconds = max(0, int((now - row.checked_at).total_seconds()))
            log.info("invoice %s released: Stripe's numbers now agree with meterbill's",
                     invoice_id)
            released += 1
        return {"rechecked": len(held), "released": released}

    def expected(self, draft: DraftInvoice, tenant: Tenant, sub: Subscription) -> Expected:
        """The draft's lines from meterbill's records: see the module's docstring."""
        start, end = draft.period_start, draft.period_end
        assert start is not None and end is not None
        base = self._base_plan(sub, end)
        segments = []
        # Stripe bills no metered usage for a trial: the invoice at its end has no usage line.
        trial = sub.trial_end is not None and sub.trial_end >= end
        for plan, seg_start in [] if trial else self._period_plans(sub, start, end):
            used = self.store().total(tenant.tenant_id, plan.meter_event_name, seg_start, end)
            segments.append(Segment(plan, seg_start, end, used))
        lines = expected_lines(base, None, segments)
        return Expected(lines, sum(s.used for s in segments), base)

    def _plan(self, key: str | None) -> Plan | None:
        return next((p for p in self.catalog if p.key == key), None) if key else None

    def _base_plan(self, sub: Subscription, end: datetime) -> Plan | None:
        """The plan billed in advance from `end`: none when the subscription ends there."""
        ends_at = sub.ended_at or (sub.current_period_end if sub.cancel_at_period_end else None)
        if ends_at is not None and ends_at <= end:
            return None
        if sub.pending_plan and sub.pending_plan_at is not None and sub.pending_plan_at <= end:
            return self._plan(sub.pending_plan)
        return self._plan(sub.plan_type)

    def _period_plans(self, sub: Subscription, start: datetime,
                      end: datetime) -> list[tuple[Plan, datetime]]:
        """The plan whose metered price bills [start, end) and from when: after a change made
        inside the period, the usage before it was billed on the change's invoice."""
        at, previous = sub.plan_changed_at, self._plan(sub.previous_plan)
        current = self._plan(sub.plan_type)
        if previous is not None and at is not None and at >= end:
            return [(previous, start)]  # a downgrade took effect at this period's end
        if current is not None and at is not None and start < at < end:
            return [(current, at)]
        return [(current, start)] if current is not None else []

    def _metric(self, expected: Expected) -> str:
        return expected.base.meter_event_name if expected.base else "units"

    # --- invoice.finalized --------------------------------------------------------------------

    def unchecked(self, invoice: InvoiceRecord, at: datetime) -> bool:
        """A renewal finalized before meterbill checked it: counted (`unverified`) and
        alerted, once. False when it was checked, or is not one meterbill checks."""
        if invoice.subscription_id is None or invoice.billing_reason not in CHECKED_REASONS:
            return False
        invoice_id, customer_id, currency = invoice.id, invoice.customer_id, invoice.currency
        total = invoice.amount_due
        with self.db.session() as session:
            checks = InvoiceCheckRepository(session)
            if checks.get(invoice_id) is not None:
                return False
            tenant_id = TenantRepository(session).tenant_id_for_customer(customer_id)
            if tenant_id is None:
                return False
            summary = (f"{tenant_id}: invoice {invoice_id} "
                       f"({format_cents(total, currency)}) was finalized before meterbill "
                       "could check it")
            added = checks.add(InvoiceCheck(
                invoice_id=invoice_id, tenant_id=tenant_id, customer_id=customer_id,
                subscription_id=invoice.subscription_id, period_start=invoice.period_start,
                period_end=invoice.period_end,
                currency=currency, status="unverified", stripe_total=total, expected_total=None,
                used=0, stripe_lines="[]", expected_lines="[]",
                reasons=json.dumps(["finalized before it was checked"]), summary=summary,
                checked_at=at, finalizes_at=None, reminded_at=None, decided_at=None,
                decided_by=None, decision_reason=None, correction_cents=None,
                correction_item_id=None, review_seconds=None))
            if added:
                detail = (f"{summary}. Check the invoice in Stripe; a webhook backlog or an "
                          "outage kept meterbill from checking it inside the draft window.")
                log.error("ADMIN ALERT: %s", detail)
                self.notifier.enqueue(session, admin_alert(
                    f"invoice_unverified:{invoice_id}", f"Invoice not verified: {tenant_id}",
                    detail, tenant_id=tenant_id))
            return added

