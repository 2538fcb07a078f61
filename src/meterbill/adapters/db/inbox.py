"""The webhook inbox: every Stripe event we accepted, and what became of it.

The inbox is the source of truth for webhook processing. The endpoint inserts a row and commits
before it answers Stripe; workers claim rows with a lease, so two workers never handle the same
row at once; a sweep finds rows that were never handled (a lost task, a killed worker).

Every state change is one UPDATE whose WHERE clause states what the row must look like, and the
caller checks the rowcount: the database arbitrates races on SQLite and PostgreSQL alike.

The notices handlers record (`billing_notices`, the notification outbox) live in
`notifications.py`; `BillingNotice` and `NoticeRepository` are re-exported here for old imports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
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
from ...ports.webhooks import VerifiedEvent
from .models import Base, UTCDateTime
from .notifications import BillingNotice, NoticeRepository
from .session import Database
from .statements import conflict_insert, rowcount, status_counts

__all__ = ["BillingNotice", "Claimed", "InboxRepository", "InboxWriter", "NoticeRepository",
           "WebhookEvent"]

# received: stored, not yet tried; processing: claimed by a worker (see claimed_until);
# handled / ignored: done; failed: an attempt failed, retried at next_attempt_at;
# dead: gave up after the attempt limit; parked: its customer never showed up.
STATUSES = ("received", "processing", "handled", "ignored", "failed", "dead", "parked")
DONE = ("handled", "ignored")
RUNNABLE = ("received", "failed")


class WebhookEvent(Base):
    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(128), index=True)
    object_id: Mapped[str | None] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(UTCDateTime())  # Stripe's `created`
    payload: Mapped[str] = mapped_column(Text)  # the raw body, exactly as signed
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)  # what the handler did, for `webhooks show`
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


@dataclass(frozen=True)
class Claimed:
    """A row a worker just took: what processing it needs."""

    row_id: int
    payload: str
    attempts: int  # including this one
    received_at: datetime


class InboxWriter:
    """The webhook endpoint's INSERT, run on a connection and transaction of its own (the
    intake's writer thread commits each batch before any answer goes out).

    One statement per database, INSERT ... ON CONFLICT DO NOTHING RETURNING event_id, id, built
    once and run with a batch's rows as parameters (SQLAlchemy's "insertmanyvalues" sends them
    as multi-row INSERTs), so its SQL is compiled once: compiling a fresh multi-row VALUES
    clause for every batch was the writer's largest cost (bench/bench_webhook_ack.py). Whether
    a row was stored is read from RETURNING; the unique event id makes a repeat a no-op."""

    def __init__(self) -> None:
        self._statements: dict[str, Any] = {}  # per database dialect

    def insert(self, db: Database, events: Sequence[VerifiedEvent], *,
               handled: Callable[[str], bool], now: datetime) -> dict[str, int]:
        """Store the events not stored yet in `db` and commit; {event_id: row id} of those this
        call stored (a repeat, already stored or earlier in `events`, is left out). An event of
        a type nobody handles (`handled` says False) is stored `ignored`, done at once."""
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for e in events:
            if e.id in seen:
                continue
            seen.add(e.id)
            wanted = handled(e.type)
            rows.append({"event_id": e.id, "type": e.type, "created": e.created,
                         "payload": e.payload, "object_id": e.object_id,
                         "status": "received" if wanted else "ignored", "attempts": 0,
                         "received_at": now, "handled_at": None if wanted else now,
                         "note": None if wanted else f"no handler for {e.type}"})
        with db.engine.begin() as connection:
            dialect = connection.dialect.name
            statement = self._statements.get(dialect)
            if statement is None:  # built once: SQLAlchemy then reuses its compiled SQL
                statement = self._statements[dialect] = self._statement(dialect)
            result = connection.execute(statement, rows)
            return {event_id: row_id for event_id, row_id in result}

    @staticmethod
    def _statement(dialect: str) -> Any:
        table: Any = WebhookEvent.__table__
        return conflict_insert(dialect, table).on_conflict_do_nothing(
            index_elements=["event_id"]).returning(table.c.event_id, table.c.id)


class InboxRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- intake ------------------------------------------------------------------------------

    def get(self, row_id: int) -> WebhookEvent | None:
        return self.session.get(WebhookEvent, row_id)

    def by_event_id(self, event_id: str) -> WebhookEvent | None:
        query = select(WebhookEvent).where(WebhookEvent.event_id == event_id)
        return self.session.scalars(query).one_or_none()

    def find(self, key: str) -> WebhookEvent | None:
        """A row by inbox id (digits) or Stripe event id (`evt_...`)."""
        return self.get(int(key)) if key.isdigit() else self.by_event_id(key)

    def known_event_ids(self, event_ids: Iterable[str]) -> set[str]:
        ids = list(event_ids)
        found: set[str] = set()
        for start in range(0, len(ids), 500):  # keep each IN (...) list short
            chunk = ids[start:start + 500]
            query = select(WebhookEvent.event_id).where(WebhookEvent.event_id.in_(chunk))
            found.update(self.session.scalars(query))
        return found

    # --- claiming and finishing --------------------------------------------------------------

    def claim(self, row_id: int, worker: str, *, now: datetime,
              lease: timedelta) -> Claimed | None:
        """Take the row for `worker` until now + lease: what the handler needs of it, or None
        when it is not ours to take.

        A row can be taken when it is waiting (received, or failed and due) or when another
        worker's lease ran out (that worker died or hung). Finished rows are never taken:
        `requeue` them first (a manual replay).
        """
        lease_expired = and_(WebhookEvent.status == "processing",
                             WebhookEvent.claimed_until < now)
        due = or_(WebhookEvent.next_attempt_at.is_(None), WebhookEvent.next_attempt_at <= now)
        takeable = or_(and_(WebhookEvent.status.in_(RUNNABLE), due), lease_expired)
        # One statement takes the row and returns it (RETURNING: PostgreSQL, SQLite >= 3.35).
        found = self.session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == row_id, takeable)
            .values(status="processing", claimed_by=worker, claimed_until=now + lease,
                    attempts=WebhookEvent.attempts + 1)
            .returning(WebhookEvent.payload, WebhookEvent.attempts, WebhookEvent.received_at)
            .execution_options(synchronize_session=False)
        ).first()
        if found is None:
            return None
        return Claimed(row_id, found.payload, found.attempts, found.received_at)

    def finish(self, row_id: int, worker: str, *, status: str, now: datetime,
               note: str | None) -> bool:
        """Mark our claimed row handled/ignored; False if we lost the claim meanwhile."""
        assert status in DONE
        return self._release(row_id, worker, status=status, handled_at=now, note=note,
                             last_error=None, traceback=None, next_attempt_at=None)

    def fail(self, row_id: int, worker: str, *, status: str, error: str, traceback: str | None,
             next_attempt_at: datetime | None) -> bool:
        """Record a failed attempt on our claimed row (status failed, dead or parked)."""
        assert status in ("failed", "dead", "parked")
        return self._release(row_id, worker, status=status, last_error=error,
                             traceback=traceback, next_attempt_at=next_attempt_at)

    def _release(self, row_id: int, worker: str, **values: Any) -> bool:
        result = self.session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == row_id, WebhookEvent.status == "processing",
                   WebhookEvent.claimed_by == worker)
            .values(claimed_by=None, claimed_until=None, **values)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) == 1

    def requeue(self, row_id: int) -> bool:
        """Make a finished, failed, dead or parked row run again (not one being processed)."""
        result = self.session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == row_id, WebhookEvent.status != "processing")
            .values(status="received", next_attempt_at=None, attempts=0)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) == 1

    # --- what needs doing --------------------------------------------------------------------

    def due_ids(self, *, now: datetime, received_before: datetime,
                limit: int = 500) -> list[int]:
        """Rows a sweep should dispatch: received a while ago and still waiting, failed rows
        whose retry is due, and rows whose worker's lease ran out."""
        query = (
            select(WebhookEvent.id)
            .where(or_(
                and_(WebhookEvent.status == "received",
                     WebhookEvent.received_at <= received_before),
                and_(WebhookEvent.status == "failed", WebhookEvent.next_attempt_at <= now),
                and_(WebhookEvent.status == "processing", WebhookEvent.claimed_until < now),
            ))
            .order_by(WebhookEvent.created, WebhookEvent.id)
            .limit(limit)
        )
        return list(self.session.scalars(query))

    def ids_with_status(self, statuses: Sequence[str], limit: int = 1000) -> list[int]:
        query = (select(WebhookEvent.id).where(WebhookEvent.status.in_(statuses))
                 .order_by(WebhookEvent.created, WebhookEvent.id).limit(limit))
        return list(self.session.scalars(query))

    def recent(self, *, status: str | None = None, type: str | None = None,
               limit: int = 50) -> Sequence[WebhookEvent]:
        query = select(WebhookEvent)
        if status:
            query = query.where(WebhookEvent.status == status)
        if type:
            query = query.where(WebhookEvent.type == type)
        query = query.order_by(WebhookEvent.received_at.desc(), WebhookEvent.id.desc())
        return self.session.scalars(query.limit(limit)).all()

    def last_id(self) -> int:
        """The newest row's id (0 when empty): a mark for `since`."""
        return int(self.session.scalar(select(func.max(WebhookEvent.id))) or 0)

    def since(self, row_id: int) -> Sequence[WebhookEvent]:
        """The rows stored after `last_id` returned `row_id`, oldest first."""
        query = select(WebhookEvent).where(WebhookEvent.id > row_id).order_by(WebhookEvent.id)
        return self.session.scalars(query).all()

    def counts(self) -> dict[str, int]:
        """Rows per status (every status present, zero included): the inbox gauges."""
        return status_counts(self.session, WebhookEvent.status, STATUSES)
