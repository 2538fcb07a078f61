"""The usage sync ledger: every meter event we sent, or meant to send, to Stripe; and the drifts
usage reconciliation found.

One row per meter event, identified by `{tenant}:{metric}:{day}:{n}` (unique). Its quantity is a
delta: what the usage store's deduplicated total of that slot had grown by since the rows
before it; negative for a correction (events deleted as fraud or test traffic). What we have
reported for a slot is the sum of its `pending` and `sent` rows.

Why a crash anywhere is safe:

1. The row is written `pending` and COMMITTED before Stripe is called. A crash before the call
   leaves a pending row for an event Stripe never saw; a crash after it, a pending row for one
   Stripe has. Either way the next sync finds the row and never counts its usage twice (a
   pending row counts as reported when deltas are computed).
2. The event goes out with the row's identifier as `identifier` AND its
   `usage:{identifier}` as idempotency key, and with the timestamp and value stored on the row,
   so a resend is the very same request.
3. A pending row is resent at the start of the next sync. Within 24 hours of its last attempt
   (we use 23 h, `DEDUPE_WINDOW`) Stripe dedupes it: the idempotency key replays the first
   answer (for 24 h), and a second event with the same identifier is refused (identifiers are
   unique for a rolling 24 h). Either answer means "Stripe has it": the row becomes `sent`.
4. Past that window neither guard holds, and a blind resend could count the usage twice. So an
   old pending row is first looked up in Stripe's meter event summaries: the summary of the
   minute its timestamp falls in, minus what our `sent` rows put in that minute, is what the
   pending rows of that minute added. All of them → mark them sent; nothing → resend them (the
   identifier was never used); anything else → leave them pending and raise an admin alert
   (someone else reported usage for that customer in that minute). Adjustments cannot help
   here: Stripe cancels an event only within 24 h of receiving it.
5. Stripe refusing an event (400: customer deleted, timestamp out of the window) marks the row
   `failed`: Stripe recorded nothing, so it no longer counts, and the next sync sends the slot's
   usage under a new number. A transient failure (429 after the backoff, 5xx, no connection)
   leaves it `pending`.

Corrections are negative meter events (Stripe takes whole numbers, negative ones included; a
period's negative total bills as 0), sent and recorded like any other row: one call, exact at
any age up to Stripe's 35 days, where adjustments would need one cancel per earlier event and
only work within 24 h.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from ...domain.clock import utcnow
from .models import Base, UTCDateTime

# A row's state: pending (committed, the Stripe call not known to have succeeded), sent
# (Stripe has it) or failed (Stripe refused it, recorded nothing).
COUNTED = ("pending", "sent")
# Stripe dedupes idempotency keys and identifiers for 24 h; an hour of margin.
DEDUPE_WINDOW = timedelta(hours=23)


class UsageLedgerEntry(Base):
    __tablename__ = "usage_ledger"
    __table_args__ = (
        UniqueConstraint("tenant_id", "metric", "day", "seq",
                         name="uq_usage_ledger_tenant_metric_day_seq"),
        Index("ix_usage_ledger_tenant_day", "tenant_id", "day"),
        Index("ix_usage_ledger_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date())
    seq: Mapped[int] = mapped_column(Integer)  # n: 1, 2, ... per tenant, metric and day
    identifier: Mapped[str] = mapped_column(String(100), unique=True)
    event_name: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[str] = mapped_column(String(64))
    slot_start: Mapped[datetime] = mapped_column(UTCDateTime())
    event_timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    quantity: Mapped[int] = mapped_column(BigInteger())
    kind: Mapped[str] = mapped_column(String(16))  # usage | correction
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)  # Stripe's (or our) reason, last attempt


class UsageDrift(Base):
    """A difference reconciliation found between the usage store and Stripe's meter."""

    __tablename__ = "usage_drift"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(128), index=True)
    metric: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[str] = mapped_column(String(64))
    period_label: Mapped[str] = mapped_column(String(32))  # "current" or YYYY-MM
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    ours: Mapped[int] = mapped_column(BigInteger())  # the usage store's total
    stripe: Mapped[int] = mapped_column(BigInteger())  # Stripe's meter event summary
    ledger: Mapped[int] = mapped_column(BigInteger())  # what our ledger says was reported
    diff: Mapped[int] = mapped_column(BigInteger())  # ours - stripe
    found_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


@dataclass(frozen=True)
class NewEntry:
    tenant_id: str
    metric: str
    day: date
    seq: int
    identifier: str
    event_name: str
    customer_id: str
    slot_start: datetime
    event_timestamp: datetime
    quantity: int
    kind: str


@dataclass(frozen=True)
class EntryOutcome:
    id: int
    state: str  # sent | failed | pending (still unknown)
    attempted_at: datetime | None
    error: str | None = None


def _insert(session: Session, table: Any) -> postgresql.Insert | sqlite.Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect {dialect}")  # pragma: no cover


class UsageLedgerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def entries(self, tenant_ids: Collection[str], metric: str, first: date,
                last: date) -> Sequence[UsageLedgerEntry]:
        """Every row of these tenants for days `first`..`last`, plus their pending rows of any
        day (a crash may have left one outside the range being synced)."""
        if not tenant_ids:
            return []
        ids = sorted(set(tenant_ids))
        in_range = select(UsageLedgerEntry).where(
            UsageLedgerEntry.tenant_id.in_(ids), UsageLedgerEntry.metric == metric,
            UsageLedgerEntry.day >= first, UsageLedgerEntry.day <= last)
        pending = select(UsageLedgerEntry).where(
            UsageLedgerEntry.tenant_id.in_(ids), UsageLedgerEntry.metric == metric,
            UsageLedgerEntry.state == "pending")
        rows = {row.id: row for row in self.session.scalars(in_range)}
        rows.update((row.id, row) for row in self.session.scalars(pending))
        return sorted(rows.values(), key=lambda r: (r.tenant_id, r.day, r.seq))

    def add_pending(self, entries: Iterable[NewEntry], now: datetime | None = None
                    ) -> dict[str, int]:
        """Insert rows as `pending`; returns {identifier: id} of those inserted. A row whose
        (tenant, metric, day, n) another sync took first is skipped, not overwritten."""
        now = now or utcnow()
        values = [{
            "tenant_id": e.tenant_id, "metric": e.metric, "day": e.day, "seq": e.seq,
            "identifier": e.identifier, "event_name": e.event_name,
            "customer_id": e.customer_id, "slot_start": e.slot_start,
            "event_timestamp": e.event_timestamp, "quantity": e.quantity, "kind": e.kind,
            "state": "pending", "attempts": 0, "created_at": now,
        } for e in entries]
        if not values:
            return {}
        table = UsageLedgerEntry.__table__
        # One executemany: SQLAlchemy batches it into multi-row INSERTs with RETURNING, which
        # answers only for the rows inserted (in any order, hence the identifiers).
        statement = _insert(self.session, table).on_conflict_do_nothing().returning(
            table.c.identifier, table.c.id)
        result = self.session.execute(statement, values)
        return {str(identifier): int(row_id) for identifier, row_id in result}

    def record(self, outcomes: Iterable[EntryOutcome], now: datetime | None = None) -> None:
        """Write what each attempt found out, in one executemany. A row already `sent` never
        goes back; an outcome without `attempted_at` (found out without a call) keeps the
        row's attempt count and time."""
        now = now or utcnow()
        params = [{"row_id": o.id, "new_state": o.state, "new_error": o.error,
                   "at": o.attempted_at, "tried": 0 if o.attempted_at is None else 1,
                   "sent": now if o.state == "sent" else None} for o in outcomes]
        if not params:
            return
        row = UsageLedgerEntry
        statement = (
            update(row)
            .where(row.id == bindparam("row_id"), row.state == "pending")
            .values(state=bindparam("new_state"), error=bindparam("new_error"),
                    attempts=row.attempts + bindparam("tried"),
                    attempted_at=func.coalesce(bindparam("at", type_=UTCDateTime()),
                                               row.attempted_at),
                    sent_at=func.coalesce(bindparam("sent", type_=UTCDateTime()),
                                          row.sent_at)))
        # Through the session's connection: a Core executemany, not the ORM's bulk update.
        self.session.connection().execute(statement, params)

    def reported(self, tenant_id: str, metric: str, start: datetime, end: datetime) -> int:
        """What the ledger says was reported with timestamps in [start, end)."""
        total = self.session.scalar(
            select(func.coalesce(func.sum(UsageLedgerEntry.quantity), 0)).where(
                UsageLedgerEntry.tenant_id == tenant_id, UsageLedgerEntry.metric == metric,
                UsageLedgerEntry.state.in_(COUNTED),
                UsageLedgerEntry.event_timestamp >= start,
                UsageLedgerEntry.event_timestamp < end))
        return int(total or 0)

    def sent_between(self, tenant_id: str, customer_id: str, event_name: str,
                     start: datetime, end: datetime) -> int:
        """The quantity of `sent` rows for this customer and meter stamped in [start, end)."""
        total = self.session.scalar(
            select(func.coalesce(func.sum(UsageLedgerEntry.quantity), 0)).where(
                UsageLedgerEntry.tenant_id == tenant_id,
                UsageLedgerEntry.customer_id == customer_id,
                UsageLedgerEntry.event_name == event_name, UsageLedgerEntry.state == "sent",
                UsageLedgerEntry.event_timestamp >= start,
                UsageLedgerEntry.event_timestamp < end))
        return int(total or 0)

    def for_tenant(self, tenant_id: str, limit: int = 200) -> Sequence[UsageLedgerEntry]:
        query = (select(UsageLedgerEntry).where(UsageLedgerEntry.tenant_id == tenant_id)
                 .order_by(UsageLedgerEntry.day.desc(), UsageLedgerEntry.seq.desc())
                 .limit(limit))
        return self.session.scalars(query).all()


class UsageDriftRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, drift: UsageDrift) -> UsageDrift:
        self.session.add(drift)
        return drift

    def recent(self, limit: int = 100, tenant_id: str | None = None) -> Sequence[UsageDrift]:
        query = select(UsageDrift).order_by(UsageDrift.found_at.desc(), UsageDrift.id.desc())
        if tenant_id is not None:
            query = query.where(UsageDrift.tenant_id == tenant_id)
        return self.session.scalars(query.limit(limit)).all()
