"""Time travel in sandbox mode: the test clocks that meterbill's customers sit on, moved together.

Every customer meterbill creates in sandbox mode gets a test clock of its own, named
`meterbill:<tenant>`: Stripe limits how many customers one clock may hold, and a clock per tenant
keeps each tenant's history apart (deleting a clock deletes its customers). All of them are kept at
one time, the account's "now": a new clock starts at the newest clock's time and `advance` moves
every clock to the same target, a day at a time, so that events arrive day by day, as they would
over a real month. After each day it waits for the clocks to be ready and for the resulting
events to be delivered to this meterbill and handled (`settle`), then reports what happened.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ...adapters.db.inbox import DONE, InboxRepository
from ...adapters.db.notifications import NoticeRepository
from ...adapters.db.repositories import SubscriptionRepository
from ...adapters.db.session import Database
from ...adapters.db.timeline import TimelineRepository
from ...domain.clock import Clock, utcnow
from ...domain.errors import Conflict, InvalidInput
from ...ports.test_clocks import ClockRecord, TestClocksPort

PREFIX = "meterbill:"
STEP = timedelta(days=1)
# Stripe refuses an advance past two billing intervals of the shortest subscription: a year is
# far beyond what anyone steps through by hand, and a day-by-day walk of it stays bounded.
MAX_ADVANCE = timedelta(days=366)
# After a renewal Stripe finalizes the draft about an hour later and charges it; two hours past
# the period end the renewal has been paid or has failed.
RENEWAL_MARGIN = timedelta(hours=2)
_INVOICE_EVENTS = ("invoice.created", "invoice.finalized", "invoice.paid",
                   "invoice.payment_failed")


@dataclass
class AdvanceReport:
    """What one advance did, as meterbill saw it (its inbox, timeline and outbox)."""

    started: datetime  # the account's time before
    reached: datetime
    clocks: int
    steps: int
    waited_seconds: float
    events: dict[str, int] = field(default_factory=dict)
    invoices: dict[str, int] = field(default_factory=dict)  # counts and cents
    dunning: list[dict[str, Any]] = field(default_factory=list)
    emails: list[dict[str, Any]] = field(default_factory=list)
    unhandled: int = 0  # events not handled when the wait ended

    def to_dict(self) -> dict[str, Any]:
        return {"started": self.started.isoformat(), "reached": self.reached.isoformat(),
                "clocks": self.clocks, "steps": self.steps,
                "waited_seconds": self.waited_seconds, "events": self.events,
                "invoices": self.invoices, "dunning": self.dunning, "emails": self.emails,
                "unhandled": self.unhandled}


@dataclass
class Marks:
    """Where meterbill's inbox, timeline and outbox stood: what happened since is reported."""

    inbox: int
    timeline: int
    notices: int


class SandboxClock:
    """The account's test-clock time: `now`, `clock_for(tenant)`, `advance(...)`."""

    def __init__(self, clocks: TestClocksPort, db: Database, *,
                 settle: Callable[[float], bool] = lambda timeout: True,
                 wall: Clock = utcnow, settle_seconds: float = 120.0) -> None:
        self.clocks = clocks
        self.db = db
        # Waits up to the given seconds for the sandbox's webhook deliveries to be answered.
        self.settle = settle
        self.wall = wall
        self.settle_seconds = settle_seconds
        self._now: datetime | None = None
        self._lock = threading.Lock()  # one advance at a time

    # --- the account's time --------------------------------------------------------------------

    def ours(self) -> list[ClockRecord]:
        return [c for c in self.clocks.list_clocks() if (c.name or "").startswith(PREFIX)]

    def now(self) -> datetime:
        """Stripe's time for meterbill's customers: the newest of our clocks (the real time
        before there is any). Read once, then kept up to date by `advance`."""
        if self._now is None:
            times = [c.frozen_time for c in self.ours()]
            self._now = max(times) if times else self.wall().replace(microsecond=0)
        return self._now

    def start_at(self, moment: datetime) -> None:
        """Where the first clock starts (a demo starting in the past); only before any."""
        if self.ours():
            raise Conflict("The sandbox's clocks exist already; their time cannot be set.",
                           code="clocks_exist")
        self._now = moment.replace(microsecond=0)

    def clock_for(self, tenant_id: str) -> str:
        """The tenant's test clock, made at the account's time on first use."""
        name = PREFIX + tenant_id
        for clock in self.ours():
            if clock.name == name:
                return clock.id
        return self.clocks.create_clock(name=name, frozen_time=self.now(),
                                        idempotency_key=f"test-clock:{tenant_id}").id

    # --- advancing -----------------------------------------------------------------------------

    def advance(self, *, days: float | None = None, to: datetime | None = None,
                to_next_renewal: bool = False) -> AdvanceReport:
        """Move every clock of ours forward; exactly one of `days`, `to`, `to_next_renewal`."""
        if sum((days is not None, to is not None, bool(to_next_renewal))) != 1:
            raise InvalidInput("Give exactly one of days, to and to_next_renewal.",
                               field="days")
        with self._lock:
            self._now = None  # another process may have moved them
            clocks = self.ours()
            start = self.now()
            target = self._target(start, days, to, to_next_renewal)
            if not clocks:
                raise Conflict("No customer of meterbill sits on a sandbox test clock yet, so "
                               "there is no time to move. Fix: create a tenant first "
                               "(`meterbill tenants create`).", code="no_test_clocks")
            marks = self.marks()
            began = time.monotonic()
            steps, unhandled, moment = 0, 0, start
            while moment < target:
                moment = min(moment + STEP, target)
                # Set first: the events of this step are delivered and handled while the
                # clocks move, and what they record carries the step's time.
                self._now = moment
                for clock in clocks:
                    self._advance_one(clock, moment)
                steps += 1
                unhandled = self._wait_handled(marks.inbox)
            report = AdvanceReport(started=start, reached=target, clocks=len(clocks),
                                   steps=steps, waited_seconds=round(time.monotonic() - began, 2),
                                   unhandled=unhandled)
            self._fill(report, marks)
            return report

    def report_since(self, marks: Marks) -> AdvanceReport:
        """What happened since `marks()` was taken (a run of several advances)."""
        now = self.now()
        report = AdvanceReport(started=now, reached=now, clocks=len(self.ours()), steps=0,
                               waited_seconds=0.0)
        self._fill(report, marks)
        return report

    def _target(self, start: datetime, days: float | None, to: datetime | None,
                to_next_renewal: bool) -> datetime:
        if days is not None:
            if not days > 0:
                raise InvalidInput(f"days must be positive, got {days}.", field="days")
            target = start + timedelta(days=days)
        elif to is not None:
            target = to if to.tzinfo else to.replace(tzinfo=UTC)
            if target <= start:
                raise InvalidInput(f"to must be after the sandbox's time {start.isoformat()}, "
                                   f"got {target.isoformat()}.", field="to")
        else:
            with self.db.session() as session:
                renewal = SubscriptionRepository(session).next_period_end(start)
            if renewal is None:
                raise InvalidInput("No subscription renews after the sandbox's time "
                                   f"{start.isoformat()}: nothing to advance to. Fix: create a "
                                   "subscription first, or give days or to.",
                                   field="to_next_renewal")
            target = renewal + RENEWAL_MARGIN
        if target - start > MAX_ADVANCE:
            raise InvalidInput(f"Advance at most {MAX_ADVANCE.days} days at once (asked for "
                               f"{(target - start).days}).", field="days" if days else "to")
        return target.replace(microsecond=0)

    def _advance_one(self, clock: ClockRecord, moment: datetime) -> None:
        current = self.clocks.retrieve_clock(clock.id)
        if current.frozen_time >= moment:
            return  # ahead already (a clock made later, or an advance that was interrupted)
        self.clocks.advance_clock(clock.id, moment,
                                  idempotency_key=f"advance:{clock.id}:{int(moment.timestamp())}")
        deadline = time.monotonic() + self.settle_seconds
        current = self.clocks.retrieve_clock(clock.id)  # Stripe advances asynchronously
        while current.status != "ready" or current.frozen_time < moment:
            if current.status == "internal_failure":
                raise RuntimeError(f"Stripe could not advance test clock {clock.id}.")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Test clock {clock.id} is not ready after "
                                   f"{self.settle_seconds:.0f} s.")
            time.sleep(0.05)
            current = self.clocks.retrieve_clock(clock.id)

    def _wait_handled(self, inbox_mark: int) -> int:
        """Wait until every delivery is answered and every event since the mark is handled;
        how many are still not handled when the time is up."""
        deadline = time.monotonic() + self.settle_seconds
        while True:
            idle = self.settle(max(0.0, deadline - time.monotonic()))
            with self.db.session() as session:
                pending = sum(1 for row in InboxRepository(session).since(inbox_mark)
                              if row.status in ("received", "processing"))
            if (idle and pending == 0) or time.monotonic() > deadline:
                return pending
            time.sleep(0.05)

    # --- what happened -------------------------------------------------------------------------

    def marks(self) -> Marks:
        with self.db.session() as session:
            return Marks(InboxRepository(session).last_id(),
                          TimelineRepository(session).last_id(),
                          NoticeRepository(session).last_id())

    def _fill(self, report: AdvanceReport, marks: Marks) -> None:
        invoices: Counter[str] = Counter()
        with self.db.session() as session:
            rows = InboxRepository(session).since(marks.inbox)
            report.events = dict(Counter(row.type for row in rows))
            for row in rows:
                if row.type not in _INVOICE_EVENTS:
                    continue
                invoice = json.loads(row.payload)["data"]["object"]
                kind = row.type.removeprefix("invoice.")
                invoices[kind] += 1
                if kind == "paid":
                    invoices["paid_cents"] += int(invoice.get("amount_paid") or 0)
                elif kind == "payment_failed":
                    invoices["failed_cents"] += int(invoice.get("amount_due") or 0)
                elif kind == "finalized":
                    invoices["finalized_cents"] += int(invoice.get("total") or 0)
            report.invoices = dict(invoices)
            report.unhandled = report.unhandled or sum(
                1 for row in rows if row.status not in DONE and row.status != "failed")
            report.dunning = [
                {"tenant_id": e.tenant_id, "at": e.at.isoformat(), "from": e.from_state,
                 "to": e.to_state, "step": e.step, "detail": e.detail}
                for e in TimelineRepository(session).since(marks.timeline)]
            report.emails = [
                {"tenant_id": n.tenant_id, "at": n.created_at.isoformat(), "kind": n.kind,
                 "to": n.recipient,
                 "subject": n.subject, "status": n.status}
                for n in NoticeRepository(session).since(marks.notices)]
