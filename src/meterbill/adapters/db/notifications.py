"""The notification outbox (`billing_notices`): every notice, what it says, and its delivery.

A row is written inside the transaction of the change that caused it, already rendered
(recipient, subject, text and HTML bodies), so the outbox shows exactly what was or will be
sent. `dedupe_key` is unique: an event processed twice records its notice once.

Statuses:
- `pending`: waiting to be sent (again at `next_attempt_at` after a failed try);
- `sending`: claimed by a sender until `next_attempt_at` (a sender that died mid-send leaves
  the row to be claimed again once that passes);
- `sent`; `failed`: gave up after the attempt limit, or there is nobody to send it to;
- `held`: not sent because no delivery is configured (sandbox mode, no SMTP_URL): it stays
  here for the console and `meterbill notifications list`;
- `recorded`: a kind without templates, a fact for the console only (never sent).

As in the inbox, every state change is one UPDATE whose WHERE clause says what the row must
look like, and the rowcount tells the caller whether it won.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Index,
    Integer,
    String,
    Text,
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from ...domain.clock import utcnow
from .models import Base, UTCDateTime
from .statements import rowcount, session_insert, status_counts

STATUSES = ("pending", "sending", "sent", "failed", "held", "recorded")
# session.info key: ids of the notices inserted in the session's transaction, for a sender to
# deliver right after the commit.
NEW_NOTICES = "meterbill.new_notice_ids"


class BillingNotice(Base):
    __tablename__ = "billing_notices"
    __table_args__ = (Index("ix_billing_notices_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    tenant_id: Mapped[str | None] = mapped_column(String(128), index=True)
    event_id: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # email, or webhook: the admin alert URL (Slack-compatible)
    channel: Mapped[str] = mapped_column(String(16), default="email")
    to_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    recipient: Mapped[str | None] = mapped_column(Text)  # comma-separated addresses, or a URL
    subject: Mapped[str | None] = mapped_column(Text)
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="recorded")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


def new_notice_ids(session: Session) -> list[int]:
    """The ids of notices inserted in `session`'s transaction (a live list)."""
    found: list[int] = session.info.setdefault(NEW_NOTICES, [])
    return found


class NoticeRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- recording ---------------------------------------------------------------------------

    def insert(self, *, dedupe_key: str, kind: str, detail: str, tenant_id: str | None = None,
               event_id: str | None = None, **values: Any) -> int | None:
        """Add a notice unless one with `dedupe_key` exists; its id, or None when it existed.

        `values` are the other columns (status, recipient, subject, bodies, facts, ...)."""
        table = BillingNotice.__table__
        row = {"status": "recorded", "attempts": 0, "channel": "email", "to_admin": False,
               **values}
        row["created_at"] = row.get("created_at") or utcnow()  # Stripe's clock when given
        statement = session_insert(self.session, BillingNotice).values(
            dedupe_key=dedupe_key, kind=kind, tenant_id=tenant_id, event_id=event_id,
            detail=detail, **row,
        ).on_conflict_do_nothing().returning(table.c.id)
        found = self.session.execute(statement).first()
        if found is None:
            return None
        notice_id = int(found[0])
        new_notice_ids(self.session).append(notice_id)
        return notice_id

    def record(self, *, dedupe_key: str, kind: str, detail: str, tenant_id: str | None = None,
               event_id: str | None = None) -> bool:
        """Add a notice that is never sent (status `recorded`); True when this call added it."""
        return self.insert(dedupe_key=dedupe_key, kind=kind, detail=detail,
                           tenant_id=tenant_id, event_id=event_id) is not None

    # --- reading -----------------------------------------------------------------------------

    def get(self, notice_id: int) -> BillingNotice | None:
        return self.session.get(BillingNotice, notice_id)

    def by_key(self, dedupe_key: str) -> BillingNotice | None:
        query = select(BillingNotice).where(BillingNotice.dedupe_key == dedupe_key)
        return self.session.scalars(query).one_or_none()

    def last_id(self) -> int:
        """The newest notice's id (0 when empty): a mark for `since`."""
        return int(self.session.scalar(select(func.max(BillingNotice.id))) or 0)

    def since(self, notice_id: int) -> Sequence[BillingNotice]:
        """The notices recorded after the mark `notice_id`, oldest first."""
        query = (select(BillingNotice).where(BillingNotice.id > notice_id)
                 .order_by(BillingNotice.id))
        return self.session.scalars(query).all()

    def all(self, kind: str | None = None) -> Sequence[BillingNotice]:
        query = select(BillingNotice).order_by(BillingNotice.id)
        if kind:
            query = query.where(BillingNotice.kind == kind)
        return self.session.scalars(query).all()

    def recent(self, *, status: str | None = None, tenant_id: str | None = None,
               kind: str | None = None, limit: int = 50) -> Sequence[BillingNotice]:
        """The newest notices first, optionally of one status, tenant or kind."""
        query = select(BillingNotice)
        if status:
            query = query.where(BillingNotice.status == status)
        if tenant_id:
            query = query.where(BillingNotice.tenant_id == tenant_id)
        if kind:
            query = query.where(BillingNotice.kind == kind)
        query = query.order_by(BillingNotice.created_at.desc(), BillingNotice.id.desc())
        return self.session.scalars(query.limit(limit)).all()

    def counts(self) -> dict[str, int]:
        """Rows per status, every status present (zero included)."""
        return status_counts(self.session, BillingNotice.status, STATUSES)

    def due_ids(self, *, now: datetime, limit: int = 100) -> list[int]:
        """Rows a sender should try now: pending and due, or a dead sender's expired claim."""
        query = (select(BillingNotice.id).where(self._claimable(now))
                 .order_by(BillingNotice.id).limit(limit))
        return list(self.session.scalars(query))

    # --- delivery ----------------------------------------------------------------------------

    @staticmethod
    def _claimable(now: datetime) -> Any:
        due = or_(BillingNotice.next_attempt_at.is_(None), BillingNotice.next_attempt_at <= now)
        return or_(and_(BillingNotice.status == "pending", due),
                   and_(BillingNotice.status == "sending", BillingNotice.next_attempt_at < now))

    def claim(self, notice_id: int, *, now: datetime, until: datetime) -> bool:
        """Take the row for one send attempt (until `until`); False when it is not ours."""
        result = self.session.execute(
            update(BillingNotice)
            .where(BillingNotice.id == notice_id, self._claimable(now))
            .values(status="sending", next_attempt_at=until,
                    attempts=BillingNotice.attempts + 1)
            .execution_options(synchronize_session=False))
        return rowcount(result) == 1

    def finish(self, notice_id: int, *, status: str, claimed_until: datetime,
               sent_at: datetime | None = None, error: str | None = None,
               next_attempt_at: datetime | None = None) -> bool:
        """Record the outcome of our attempt (sent, pending for a retry, or failed); False
        when our claim ran out and another sender took the row meanwhile."""
        assert status in ("sent", "pending", "failed", "held")
        result = self.session.execute(
            update(BillingNotice)
            .where(BillingNotice.id == notice_id, BillingNotice.status == "sending",
                   BillingNotice.next_attempt_at == claimed_until)
            .values(status=status, sent_at=sent_at, last_error=error,
                    next_attempt_at=next_attempt_at)
            .execution_options(synchronize_session=False))
        return rowcount(result) == 1

    def retry(self, notice_id: int) -> bool:
        """Make a failed or held row pending again (`meterbill notifications retry`); only
        rows that have a recipient and a rendered body can be."""
        result = self.session.execute(
            update(BillingNotice)
            .where(BillingNotice.id == notice_id,
                   BillingNotice.status.in_(("failed", "held")),
                   BillingNotice.recipient.is_not(None), BillingNotice.body_text.is_not(None))
            .values(status="pending", attempts=0, next_attempt_at=None, last_error=None)
            .execution_options(synchronize_session=False))
        return rowcount(result) == 1
