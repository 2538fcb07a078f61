"""The review queue of held invoices and what a person does with one: approve (finalize, Stripe
collects it), correct (an invoice item for the difference, with a description the customer can
read, then finalize) or void (finalize without collecting, then void: nothing is charged).
Each action is recorded with who and why, on Stripe's clock. A hold nobody acted on alerts
again every `remind_after` until someone does (the `invoice-review` job).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from statistics import median
from typing import Any, Literal

from ...adapters.db.invoice_checks import STATUSES, InvoiceCheck, InvoiceCheckRepository
from ...adapters.db.session import Database
from ...domain.clock import Clock, utcnow
from ...domain.errors import Conflict, InvalidInput, NotFound
from ...domain.money import format_cents
from ...ports.invoices import InvoiceDraftsPort
from ...ports.notify import Notifier
from ..notifications.outbox import admin_alert
from ..views import _View

log = logging.getLogger("meterbill.invoices")

Action = Literal["approve", "correct", "void"]


@dataclasses.dataclass(frozen=True)
class ReviewItem(_View):
    invoice_id: str
    tenant_id: str
    status: str
    summary: str
    reasons: tuple[str, ...]
    currency: str
    stripe_total: int
    expected_total: int | None
    difference: int | None  # Stripe minus meterbill, cents
    period_start: datetime | None
    period_end: datetime | None
    checked_at: datetime
    finalizes_at: datetime | None  # when Stripe would have finalized it, had it not been held
    stripe_lines: tuple[dict[str, Any], ...]
    expected_lines: tuple[dict[str, Any], ...]
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None
    correction_cents: int | None
    correction_item_id: str | None


@dataclasses.dataclass(frozen=True)
class ReviewFigures(_View):
    counts: dict[str, int]
    checked: int  # verified before finalization, whatever the outcome
    amount_held: int  # cents of invoices waiting for a person
    median_review_seconds: int | None
    verified_before_finalization: float | None  # the SLO's share (target 1.0)


def _item(row: InvoiceCheck) -> ReviewItem:
    difference = (row.stripe_total - row.expected_total
                  if row.expected_total is not None else None)
    return ReviewItem(
        invoice_id=row.invoice_id, tenant_id=row.tenant_id, status=row.status,
        summary=row.summary, reasons=tuple(json.loads(row.reasons or "[]")),
        currency=row.currency, stripe_total=row.stripe_total,
        expected_total=row.expected_total, difference=difference,
        period_start=row.period_start, period_end=row.period_end, checked_at=row.checked_at,
        finalizes_at=row.finalizes_at,
        stripe_lines=tuple(json.loads(row.stripe_lines or "[]")),
        expected_lines=tuple(json.loads(row.expected_lines or "[]")),
        decided_at=row.decided_at, decided_by=row.decided_by,
        decision_reason=row.decision_reason, correction_cents=row.correction_cents,
        correction_item_id=row.correction_item_id)


class InvoiceReviewService:
    def __init__(self, db: Database, drafts: InvoiceDraftsPort, notifier: Notifier, *,
                 remind_after: timedelta | None = timedelta(hours=12),
                 clock: Clock = utcnow) -> None:
        self.db = db
        self.drafts = drafts
        self.notifier = notifier
        self.remind_after = remind_after
        self.clock = clock

    # --- reading (the API, the CLI, the console) ----------------------------------------------

    def list(self, *, status: str | None = "held", tenant_id: str | None = None,
             limit: int = 100) -> list[ReviewItem]:
        """Checked invoices, newest first; `status=None` for every one."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"Unknown status {status!r}; one of {', '.join(STATUSES)}",
                               field="status")
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be from 1 to 1000", field="limit")
        with self.db.session() as session:
            rows = InvoiceCheckRepository(session).listed(status=status, tenant_id=tenant_id,
                                                          limit=limit)
            return [_item(row) for row in rows]

    def get(self, invoice_id: str) -> ReviewItem:
        with self.db.session() as session:
            row = InvoiceCheckRepository(session).get(invoice_id)
            if row is None:
                raise NotFound(f"Invoice {invoice_id} was not checked by meterbill",
                               code="invoice_not_checked")
            return _item(row)

    def figures(self) -> ReviewFigures:
        with self.db.session() as session:
            repo = InvoiceCheckRepository(session)
            counts = repo.count_by_status()
            held = repo.held_amount()
            times = repo.review_seconds()
        checked = sum(n for status, n in counts.items() if status != "unverified")
        total = checked + counts.get("unverified", 0)
        return ReviewFigures(counts=counts, checked=checked, amount_held=held,
                             median_review_seconds=int(median(times)) if times else None,
                             verified_before_finalization=checked / total if total else None)

    # --- acting -------------------------------------------------------------------------------

    def approve(self, invoice_id: str, *, by: str, reason: str) -> ReviewItem:
        """Finalize as Stripe drafted it; Stripe collects it (charges the card) as usual."""
        return self._act(invoice_id, "approve", by, reason)

    def correct(self, invoice_id: str, *, by: str, reason: str, amount_cents: int | None = None,
                description: str | None = None) -> ReviewItem:
        """Add an invoice item for the difference (meterbill's total minus Stripe's, unless
        `amount_cents` is given), then finalize."""
        return self._act(invoice_id, "correct", by, reason, amount_cents, description)

    def void(self, invoice_id: str, *, by: str, reason: str) -> ReviewItem:
        """Finalize without collecting, then void: the customer is charged nothing for it."""
        return self._act(invoice_id, "void", by, reason)

    def _act(self, invoice_id: str, action: Action, by: str, reason: str,
             amount_cents: int | None = None, description: str | None = None) -> ReviewItem:
        by, reason = (by or "").strip(), (reason or "").strip()
        if not by:
            raise InvalidInput("Say who acts (`by`: a name or an email).", field="by")
        if not reason:
            raise InvalidInput("Say why (`reason`): it is kept with the invoice's review.",
                               field="reason")
        row = self._held(invoice_id)
        draft = self.drafts.retrieve_draft(invoice_id)
        if draft.status != "draft":
            raise Conflict(f"Invoice {invoice_id} is {draft.status} in Stripe, no longer a "
                           "draft; it was acted on outside meterbill.", code="invoice_not_draft")
        key = f"invoice-review:{invoice_id}:{action}"
        correction, item_id = None, None
        if action == "correct":
            correction = amount_cents if amount_cents is not None else (
                (row.expected_total or 0) - row.stripe_total)
            if correction == 0:
                raise InvalidInput("The totals agree: there is no difference to correct; "
                                   "approve it instead, or give amount_cents.",
                                   field="amount_cents")
            text = (description or "").strip() or self._description(row, correction)
            item_id = self.drafts.add_item(invoice_id, row.customer_id, correction,
                                           row.currency, text, idempotency_key=key + ":item")
        collect = action != "void"
        self.drafts.finalize(invoice_id, collect=collect, idempotency_key=key + ":finalize")
        if action == "void":
            after = self.drafts.retrieve_draft(invoice_id)
            if after.status == "open":  # a zero invoice is paid at finalization: nothing to void
                self.drafts.void(invoice_id, idempotency_key=key + ":void")
        now = draft.stripe_time or self.clock()
        status = {"approve": "approved", "correct": "corrected", "void": "voided"}[action]
        with self.db.session() as session:
            stored = InvoiceCheckRepository(session).get(invoice_id, for_update=True)
            assert stored is not None
            stored.status, stored.decided_at = status, now
            stored.decided_by, stored.decision_reason = by, reason
            stored.correction_cents, stored.correction_item_id = correction, item_id
            stored.review_seconds = max(0, int((now - stored.checked_at).total_seconds()))
            log.info("invoice %s %s by %s: %s", invoice_id, status, by, reason)
            return _item(stored)

    def _held(self, invoice_id: str) -> InvoiceCheck:
        with self.db.session() as session:
            row = InvoiceCheckRepository(session).get(invoice_id)
            if row is None:
                raise NotFound(f"Invoice {invoice_id} was not checked by meterbill",
                               code="invoice_not_checked")
            if row.status != "held":
                raise Conflict(f"Invoice {invoice_id} is {row.status}, not held: nothing to "
                               "review", code="invoice_not_held")
            session.expunge(row)
            return row

    @staticmethod
    def _description(row: InvoiceCheck, cents: int) -> str:
        period = ""
        if row.period_start and row.period_end:
            period = (f" for {row.period_start:%b %d} – {row.period_end:%b %d, %Y}")
        what = "credit" if cents < 0 else "charge"
        return (f"Usage correction{period}: a {what} of "
                f"{format_cents(abs(cents), row.currency)} so this invoice matches the usage "
                "we recorded for you.")

    # --- the reminder job ---------------------------------------------------------------------

    def remind(self) -> dict[str, int]:
        """Alert again about every hold nobody acted on for `remind_after` (Stripe's time)."""
        if self.remind_after is None:
            return {"reminded": 0}
        with self.db.session() as session:
            rows: Sequence[InvoiceCheck] = InvoiceCheckRepository(session).held()
            waiting = [(r.invoice_id, r.tenant_id, r.summary, r.reminded_at or r.checked_at)
                       for r in rows]
        reminded = 0
        for invoice_id, tenant_id, summary, last in waiting:
            draft = self.drafts.retrieve_draft(invoice_id)
            now = draft.stripe_time or self.clock()
            if draft.status != "draft":
                self._decided_outside(invoice_id, draft.status, now)
                continue
            if now - last < self.remind_after:
                continue
            with self.db.session() as session:
                row = InvoiceCheckRepository(session).get(invoice_id, for_update=True)
                if row is None or row.status != "held":
                    continue
                row.reminded_at = now
                detail = (f"Invoice {invoice_id} is still held, unreviewed since "
                          f"{last:%Y-%m-%d %H:%M} UTC; the customer is not charged until "
                          f"someone acts (meterbill invoices review approve|correct|void): "
                          f"{summary}")
                log.error("ADMIN ALERT: %s", detail)
                self.notifier.enqueue(session, admin_alert(
                    f"invoice_held:{invoice_id}:{now:%Y%m%d%H%M}",
                    f"Invoice still held: {tenant_id}", detail, tenant_id=tenant_id))
                reminded += 1
        return {"held": len(waiting), "reminded": reminded}

    def _decided_outside(self, invoice_id: str, status: str, now: datetime) -> None:
        """Someone finalized or voided the held draft in Stripe's dashboard: recorded as such,
        so it leaves the queue and is not alerted again."""
        with self.db.session() as session:
            row = InvoiceCheckRepository(session).get(invoice_id, for_update=True)
            if row is None or row.status != "held":
                return
            row.status = "voided" if status == "void" else "approved"
            row.decided_at, row.decided_by = now, "Stripe (outside meterbill)"
            row.decision_reason = f"the invoice was made {status} in Stripe"
            row.review_seconds = max(0, int((now - row.checked_at).total_seconds()))
        log.warning("invoice %s was held for review but is %s in Stripe now; recorded",
                    invoice_id, status)
