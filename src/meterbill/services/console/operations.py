"""Operations: the drifts reconciliation recorded (usage against Stripe's meter, subscriptions
against Stripe's, a page at a time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ...adapters.db.session import Database
from ...adapters.db.usage_ledger import UsageDriftRepository
from ..reconcile.subscriptions import DriftView, SubscriptionReconciler

DRIFTS_PER_PAGE = 25


@dataclass(frozen=True)
class UsageDriftRow:
    found_at: datetime
    tenant_id: str
    metric: str
    period: str
    ours: int  # the usage store's total
    stripe: int  # Stripe's meter event summary
    ledger: int  # what our ledger says was reported
    diff: int  # ours - stripe

    @property
    def cause(self) -> str:
        """What the ledger says about it (docs/usage-sync.md, "Reconciliation")."""
        if self.ours != self.ledger:
            return "not synced yet: the next usage sync reports it"
        return "lost on the way to Stripe, or reported by something else"


def usage_drifts(db: Database, limit: int = 50) -> list[UsageDriftRow]:
    with db.session() as session:
        return [UsageDriftRow(d.found_at, d.tenant_id, d.metric, d.period_label, d.ours,
                              d.stripe, d.ledger, d.diff)
                for d in UsageDriftRepository(session).recent(limit)]


@dataclass(frozen=True)
class DriftPage:
    rows: list[DriftView]  # newest first
    page: int
    has_next: bool


def subscription_drifts(reconciler: SubscriptionReconciler, page: int = 1) -> DriftPage:
    """One page of recorded subscription drifts; one row more than a page says if there is
    a next one, so no count is needed."""
    page = max(1, page)
    rows = reconciler.drifts(DRIFTS_PER_PAGE + 1, (page - 1) * DRIFTS_PER_PAGE)
    return DriftPage(rows[:DRIFTS_PER_PAGE], page, len(rows) > DRIFTS_PER_PAGE)
