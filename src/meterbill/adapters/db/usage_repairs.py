"""What usage repair did: one row per action (`resent`, `cancelled`, `corrected`, `adjusted`)
on a tenant's day, with the quantity, the amount of an adjustment and Stripe's reference; and
the ledger's sequence numbers of a day (the identifiers it knows it sent)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .models import Base, UTCDateTime
from .usage_ledger import UsageLedgerEntry


class UsageRepairRow(Base):
    __tablename__ = "usage_repairs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(128), index=True)
    metric: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date())
    action: Mapped[str] = mapped_column(String(16))  # resent, cancelled, corrected, adjusted
    quantity: Mapped[int] = mapped_column(BigInteger())  # signed: what Stripe gained
    amount: Mapped[int | None] = mapped_column(BigInteger())  # cents, for an adjustment
    reference: Mapped[str] = mapped_column(String(255))  # identifiers or the invoice item
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class UsageRepairRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: UsageRepairRow) -> None:
        self.session.add(row)

    def count(self, tenant_id: str, metric: str, day: date) -> int:
        return int(self.session.scalar(
            select(func.count()).select_from(UsageRepairRow).where(
                UsageRepairRow.tenant_id == tenant_id, UsageRepairRow.metric == metric,
                UsageRepairRow.day == day)) or 0)

    def adjusted(self, tenant_id: str, metric: str, first: date, last: date) -> int:
        """Units left on invoices (not on the meter) for days first..last."""
        return int(self.session.scalar(
            select(func.coalesce(func.sum(UsageRepairRow.quantity), 0)).where(
                UsageRepairRow.tenant_id == tenant_id, UsageRepairRow.metric == metric,
                UsageRepairRow.action == "adjusted", UsageRepairRow.day >= first,
                UsageRepairRow.day <= last)) or 0)

    def ledger_seqs(self, tenant_id: str, metric: str, day: date) -> set[int]:
        return set(self.session.scalars(select(UsageLedgerEntry.seq).where(
            UsageLedgerEntry.tenant_id == tenant_id, UsageLedgerEntry.metric == metric,
            UsageLedgerEntry.day == day)))
