"""The per-tenant dunning timeline: every change of a tenant's dunning state, with its cause.

Append-only. The newest entry is the tenant's current dunning state (`good_standing` when
there is none); `meterbill tenants timeline` and `GET /tenants/{id}/timeline` show the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ...domain.clock import utcnow
from .models import Base, UTCDateTime


class TimelineEntry(Base):
    __tablename__ = "tenant_timeline"
    __table_args__ = (Index("ix_tenant_timeline_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("tenants.tenant_id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    from_state: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    step: Mapped[str] = mapped_column(String(32))  # the rule that fired (recovery, warning, ...)
    cause: Mapped[str] = mapped_column(String(16))  # webhook, manual or request (API, CLI)
    event_id: Mapped[str | None] = mapped_column(String(255))
    invoice_id: Mapped[str | None] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)  # the invoice's attempt_count
    detail: Mapped[str] = mapped_column(Text)


class TimelineRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, entry: TimelineEntry) -> TimelineEntry:
        self.session.add(entry)
        self.session.flush()
        return entry

    def latest(self, tenant_id: str) -> TimelineEntry | None:
        query = (select(TimelineEntry).where(TimelineEntry.tenant_id == tenant_id)
                 .order_by(TimelineEntry.id.desc()).limit(1))
        return self.session.scalars(query).first()

    def for_tenant(self, tenant_id: str, limit: int = 100) -> Sequence[TimelineEntry]:
        """The newest `limit` entries, oldest first."""
        query = (select(TimelineEntry).where(TimelineEntry.tenant_id == tenant_id)
                 .order_by(TimelineEntry.id.desc()).limit(limit))
        return list(reversed(self.session.scalars(query).all()))

    def last_id(self) -> int:
        """The newest entry's id (0 when empty): a mark for `since`."""
        return int(self.session.scalar(select(func.max(TimelineEntry.id))) or 0)

    def since(self, entry_id: int) -> Sequence[TimelineEntry]:
        """Every tenant's entries added after the mark `entry_id`, oldest first."""
        query = (select(TimelineEntry).where(TimelineEntry.id > entry_id)
                 .order_by(TimelineEntry.id))
        return self.session.scalars(query).all()
