"""Drifts between meterbill and Stripe that reconciliation found: what, both values, when,
how it was fixed and by which run. One row per drift (`fingerprint`), so a drift seen again by
a later run (a dry run, or one that cannot be fixed) is recorded and alerted once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Index, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .models import Base, Subscription, Tenant, UTCDateTime
from .statements import session_insert


class DriftRow(Base):
    __tablename__ = "reconciliation_drifts"
    __table_args__ = (Index("ix_reconciliation_drifts_found_at", "found_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    tenant_id: Mapped[str | None] = mapped_column(String(128))
    subscription_id: Mapped[str | None] = mapped_column(String(64))
    local_value: Mapped[str] = mapped_column(String(255))
    stripe_value: Mapped[str] = mapped_column(String(255))
    found_at: Mapped[datetime] = mapped_column(UTCDateTime())
    run_id: Mapped[str] = mapped_column(String(40))  # the reconciliation run that found it
    fix: Mapped[str] = mapped_column(String(255))  # what was done about it
    fixed: Mapped[bool] = mapped_column(default=False)


class DriftRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: DriftRow) -> bool:
        """Record `row` unless its fingerprint is already there; True when it is new."""
        values = {c.key: getattr(row, c.key) for c in DriftRow.__table__.columns
                  if c.key != "id"}
        stmt = session_insert(self.session, DriftRow.__table__).values(values) \
            .on_conflict_do_nothing(index_elements=["fingerprint"]) \
            .returning(DriftRow.__table__.c.id)
        return self.session.execute(stmt).first() is not None

    def newest(self, limit: int, offset: int = 0) -> Sequence[DriftRow]:
        return self.session.scalars(select(DriftRow).order_by(DriftRow.id.desc())
                                    .limit(limit).offset(offset)).all()

    def open_count(self) -> int:
        """Drifts recorded and not fixed (they need the operator)."""
        return int(self.session.scalar(select(func.count()).select_from(DriftRow)
                                       .where(DriftRow.fixed.is_(False))) or 0)


class ReconcileReads:
    """What reconciliation reads of our side, a page at a time."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def subscriptions(self, ids: Sequence[str]) -> dict[str, tuple[Subscription, Tenant]]:
        """Our rows of these subscriptions, each with its tenant."""
        rows = self.session.execute(
            select(Subscription, Tenant).join(Tenant, Tenant.tenant_id == Subscription.tenant_id)
            .where(Subscription.id.in_(list(ids))))
        return {sub.id: (sub, tenant) for sub, tenant in rows}

    def tenants_by_customer(self, customer_ids: Sequence[str]) -> dict[str, str]:
        rows = self.session.execute(select(Tenant.stripe_customer_id, Tenant.tenant_id)
                                    .where(Tenant.stripe_customer_id.in_(list(customer_ids))))
        return {customer: tenant for customer, tenant in rows if customer}

    def current_subscription_ids(self) -> list[str]:
        """Every tenant's current subscription (the ones whose absence in Stripe matters)."""
        return [i for i in self.session.scalars(
            select(Tenant.stripe_subscription_id)
            .where(Tenant.stripe_subscription_id.is_not(None))) if i]
