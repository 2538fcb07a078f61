"""Operations: the usage drifts usage reconciliation recorded (subscription drifts and SLO
status arrive with the operations work)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ...adapters.db.session import Database
from ...adapters.db.usage_ledger import UsageDriftRepository


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
