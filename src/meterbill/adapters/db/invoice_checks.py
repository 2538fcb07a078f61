"""One row per subscription draft invoice meterbill checked (or failed to check before it was
finalized): both versions of its lines, why it was held, and the review action taken."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .models import Base, UTCDateTime
from .statements import session_insert, status_counts

# verified: equal, left to finalize; held: waiting for a person; approved / corrected / voided:
# what the person did; unverified: finalized before meterbill could check it.
STATUSES = ("verified", "held", "approved", "corrected", "voided", "unverified")


class InvoiceCheck(Base):
    __tablename__ = "invoice_checks"
    __table_args__ = (Index("ix_invoice_checks_status", "status", "checked_at"),
                      Index("ix_invoice_checks_tenant", "tenant_id", "period_end"))

    invoice_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    customer_id: Mapped[str] = mapped_column(String(64))
    subscription_id: Mapped[str | None] = mapped_column(String(64))
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    stripe_total: Mapped[int] = mapped_column(Integer)  # cents
    expected_total: Mapped[int | None] = mapped_column(Integer)  # cents; None: not computed
    used: Mapped[int] = mapped_column(Integer, default=0)  # metered units meterbill counted
    stripe_lines: Mapped[str] = mapped_column(Text)  # JSON
    expected_lines: Mapped[str] = mapped_column(Text)  # JSON
    reasons: Mapped[str] = mapped_column(Text)  # JSON list of why it was held
    summary: Mapped[str] = mapped_column(Text)  # the one-line alert
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())  # Stripe's time (test clock)
    finalizes_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    correction_cents: Mapped[int | None] = mapped_column(Integer)
    correction_item_id: Mapped[str | None] = mapped_column(String(64))
    review_seconds: Mapped[int | None] = mapped_column(Integer)  # wall time held → decided


class InvoiceCheckRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, invoice_id: str, *, for_update: bool = False) -> InvoiceCheck | None:
        query = select(InvoiceCheck).where(InvoiceCheck.invoice_id == invoice_id)
        if for_update:
            query = query.with_for_update()
        return self.session.scalars(query).first()

    def add(self, row: InvoiceCheck) -> bool:
        """Insert unless a row for the invoice exists; False when one did (a retried check)."""
        values = {c.key: getattr(row, c.key) for c in InvoiceCheck.__table__.columns}
        statement = (session_insert(self.session, InvoiceCheck.__table__).values(**values)
                     .on_conflict_do_nothing(index_elements=["invoice_id"])
                     .returning(InvoiceCheck.__table__.c.invoice_id))
        return self.session.execute(statement).first() is not None

    def listed(self, *, status: str | None = None, tenant_id: str | None = None,
               limit: int = 100) -> Sequence[InvoiceCheck]:
        query = select(InvoiceCheck)
        if status is not None:
            query = query.where(InvoiceCheck.status == status)
        if tenant_id is not None:
            query = query.where(InvoiceCheck.tenant_id == tenant_id)
        query = query.order_by(InvoiceCheck.checked_at.desc(), InvoiceCheck.invoice_id)
        return self.session.scalars(query.limit(limit)).all()

    def held(self) -> Sequence[InvoiceCheck]:
        """Holds nobody acted on, oldest first."""
        query = select(InvoiceCheck).where(InvoiceCheck.status == "held")
        return self.session.scalars(query.order_by(InvoiceCheck.checked_at)).all()

    def count_by_status(self) -> dict[str, int]:
        return status_counts(self.session, InvoiceCheck.status, STATUSES)

    def held_amount(self) -> int:
        total = self.session.scalar(select(func.coalesce(func.sum(InvoiceCheck.stripe_total), 0))
                                    .where(InvoiceCheck.status == "held"))
        return int(total or 0)

    def review_seconds(self) -> list[int]:
        rows = self.session.scalars(select(InvoiceCheck.review_seconds).where(
            InvoiceCheck.review_seconds.is_not(None)))
        return [int(r) for r in rows if r is not None]

    def earlier_usage(self, tenant_id: str, before: datetime, limit: int = 3) -> list[int]:
        """Metered usage of the tenant's earlier checked invoices, newest first."""
        query = (select(InvoiceCheck.used).where(InvoiceCheck.tenant_id == tenant_id,
                                                 InvoiceCheck.period_end < before)
                 .order_by(InvoiceCheck.period_end.desc()).limit(limit))
        return [int(u) for u in self.session.scalars(query)]

    def has_earlier(self, tenant_id: str, before: datetime) -> bool:
        query = select(InvoiceCheck.invoice_id).where(InvoiceCheck.tenant_id == tenant_id,
                                                      InvoiceCheck.period_end < before)
        return self.session.scalars(query.limit(1)).first() is not None
