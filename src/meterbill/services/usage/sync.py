"""Usage sync: the usage store's deduplicated totals, reported to Stripe's meters exactly once.

For each tenant with a Stripe customer and a subscription with a metered price, and each slot
(a UTC day, cut where a billing period ends; see `domain.usage_slots`): the store's total minus
what the ledger says was reported is sent as ONE meter event, `{tenant}:{metric}:{day}:{n}`.
Re-running sends nothing; late events are a further delta; a total that went down is sent as a
negative correction and logged. The ledger (`adapters.db.usage_ledger`) explains why a crash
between the Stripe call and the ledger write is safe.

How a run goes, per chunk of tenants (so memory stays flat however many tenants there are):
1. read the chunk's targets, store totals and ledger rows; plan the deltas;
2. commit the new rows as `pending` (before any call);
3. send, tenants in parallel on a pool of `concurrency` threads (one tenant's calls one after
   another: Stripe allows one concurrent call per customer and meter), through the port's
   pacing and 429 backoff; old pending rows go first;
4. record the outcomes. The next chunk is planned while this one sends.

One tenant's failure is recorded in its result and never stops the others. Only the billed
metric is synced: "queries", on the catalog's meter; "tokens" has no meter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ...adapters.db.repositories import MeteredTenant, TenantRepository
from ...adapters.db.session import Database
from ...adapters.db.usage_ledger import (
    COUNTED,
    DEDUPE_WINDOW,
    EntryOutcome,
    NewEntry,
    UsageLedgerEntry,
    UsageLedgerRepository,
)
from ...domain import usage_slots as slots
from ...domain.clock import Clock, utcnow
from ...domain.errors import MeterbillError, StripeInvalidRequest, StripeUnavailable
from ...domain.plans import Catalog
from ...domain.usage import PAST_WINDOW, Metric, check_sync_day, day_bounds
from ...ports.meters import MeterEventsPort
from ...ports.metrics import metrics
from ...ports.usage_store import UsageStore
from ..billing.tenants import unknown_tenant

log = logging.getLogger("meterbill.usage")

BILLED_METRIC: Metric = "queries"
# Statuses whose subscriptions still bill usage (a canceled one: up to its cancellation).
BILLABLE = ("incomplete", "trialing", "active", "past_due", "unpaid", "paused", "canceled")
STATUS_ORDER = ("unchanged", "skipped", "sent", "corrected", "failed")


@dataclass(frozen=True)
class SyncOptions:
    concurrency: int = 8
    chunk_size: int = 500


@dataclass(slots=True)
class TenantResult:
    tenant_id: str
    status: str = "unchanged"  # unchanged | skipped | sent | corrected | failed
    sent: int = 0  # units added to Stripe's meter
    corrected: int = 0  # units taken back by corrections
    calls: int = 0  # Stripe requests made for this tenant
    reason: str | None = None
    retryable: bool = False  # the failure was transient: a later run may well succeed

    def mark(self, status: str, reason: str | None = None, *, retryable: bool = False) -> None:
        if STATUS_ORDER.index(status) >= STATUS_ORDER.index(self.status):
            self.status = status
        if reason:
            self.reason = f"{self.reason}; {reason}" if self.reason else reason
        self.retryable = self.retryable or retryable

    def to_dict(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "status": self.status, "sent": self.sent,
                "corrected": self.corrected, "calls": self.calls, "reason": self.reason}


@dataclass
class SyncReport:
    """Totals over every tenant; the results themselves for at most `detail_limit` tenants
    (failures in `failed`, also at most that many), so that a run over any number of tenants
    keeps its memory flat. `on_result` callbacks of `sync()` see every result."""

    first_day: date
    last_day: date
    started_at: datetime
    finished_at: datetime | None = None
    detail_limit: int = 1000
    tenants: list[TenantResult] = field(default_factory=list)
    failed: list[TenantResult] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUS_ORDER, 0))
    sent: int = 0
    corrected: int = 0
    calls: int = 0
    omitted: int = 0  # results counted but not kept in `tenants`

    def add(self, result: TenantResult) -> None:
        self.counts[result.status] += 1
        self.sent += result.sent
        self.corrected += result.corrected
        self.calls += result.calls
        if result.status == "failed" and len(self.failed) < self.detail_limit:
            self.failed.append(result)
        if len(self.tenants) < self.detail_limit:
            self.tenants.append(result)
        else:
            self.omitted += 1

    def count(self, status: str) -> int:
        return self.counts[status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "first_day": self.first_day.isoformat(), "last_day": self.last_day.isoformat(),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "counts": dict(self.counts), "sent": self.sent, "corrected": self.corrected,
            "calls": self.calls, "tenants": [t.to_dict() for t in self.tenants],
            "failed": [t.to_dict() for t in self.failed], "omitted": self.omitted,
        }


@dataclass(frozen=True)
class _Send:
    """One ledger row to (re)send, with the exact parameters of its first attempt."""

    id: int
    identifier: str
    event_name: str
    customer_id: str
    quantity: int
    timestamp: datetime
    kind: str


@dataclass
class _StaleGroup:
    """Old pending rows of one customer, meter and minute; `sent_before` is what the minute
    holds from rows known to be sent."""

    rows: list[_Send]
    minute: datetime
    sent_before: int


@dataclass
class _Job:
    target: MeteredTenant
    result: TenantResult
    resend: list[_Send] = field(default_factory=list)
    stale: list[_StaleGroup] = field(default_factory=list)
    new: list[_Send] = field(default_factory=list)


class UsageSyncService:
    def __init__(self, db: Database, store: UsageStore, meters: MeterEventsPort,
                 catalog: Catalog, options: SyncOptions | None = None, *,
                 clock: Clock = utcnow, wall: Clock = utcnow) -> None:
        self.db = db
        self.store = store
        self.meters = meters
        self.catalog = catalog
        self.options = options or SyncOptions()
        # `clock`: the billing time Stripe judges timestamps by (a test clock's in tests);
        # `wall`: real time, for the ledger and Stripe's 24-hour dedupe windows.
        self.clock = clock
        self.wall = wall

    @property
    def event_name(self) -> str:
        return self.catalog.meter.event_name

    # --- entry points ------------------------------------------------------------------------

    def sync(self, *, days: Sequence[date] | None = None, since: date | None = None,
             tenants: Collection[str] | None = None, open_periods: bool | None = None,
             until: datetime | None = None, extra_boundaries: Sequence[datetime] = (),
             on_result: Callable[[TenantResult], None] | None = None,
             detail_limit: int = 1000) -> SyncReport:
        """Report what the ledger lacks for `days`, or every day from `since` to today, or by
        default yesterday and today and every day of each tenant's open period.

        `until` leaves out usage at or after that moment (the period-end flush)."""
        now = self.clock()
        today = now.date()  # Stripe's: a test clock's in tests
        for day in days or ():
            check_sync_day(day, "date", today)
        check_sync_day(since, "since", today)
        if days:
            first, last, only = min(days), max(days), set(days)
        else:
            first = since or today - timedelta(days=1)
            last, only = (until.date() if until else today), None
            if open_periods is None:
                open_periods = since is None
        report = SyncReport(first, last, self.wall(), detail_limit=detail_limit)
        wanted = None if tenants is None else sorted(set(tenants))
        if wanted is not None:
            self._check_tenants(wanted, report, on_result)
        plan = _Plan(first, last, only, bool(open_periods), until, tuple(extra_boundaries),
                     now)
        workers = max(1, self.options.concurrency)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="usage-sync") as pool:
            in_flight: tuple[list[_Job], list[Future[list[EntryOutcome]]]] | None = None
            for chunk in self._targets(wanted):
                jobs = self._prepare(chunk, plan)
                futures = [pool.submit(self._run, job) for job in jobs]
                if in_flight is not None:
                    self._finish(*in_flight, report, on_result)
                in_flight = (jobs, futures)
            if in_flight is not None:
                self._finish(*in_flight, report, on_result)
        report.finished_at = self.wall()
        return report

    def flush(self, customer_id: str, period_end: datetime) -> None:
        """`UsageFlushPort`: report the customer's usage up to `period_end` (the period's last,
        partial day included) before its draft invoice finalizes. Raises when a retry could
        help (the webhook is then retried); logs an admin alert for what it cannot send."""
        with self.db.session() as session:
            tenant_id = TenantRepository(session).tenant_id_for_customer(customer_id)
        if tenant_id is None:
            return
        period_end = period_end.astimezone(UTC)
        earliest = max(period_end, self.clock()) - PAST_WINDOW
        report = self.sync(since=earliest.date(), tenants=[tenant_id], until=period_end,
                           extra_boundaries=[period_end], open_periods=False)
        for result in report.failed:
            if result.retryable:
                raise StripeUnavailable(f"Usage of tenant {tenant_id} up to "
                                        f"{period_end.isoformat()} not flushed: {result.reason}")
            log.error("ADMIN ALERT: usage of tenant %s up to %s cannot be reported: %s",
                      tenant_id, period_end.isoformat(), result.reason)

    # --- targets -----------------------------------------------------------------------------

    def count_targets(self, tenants: Collection[str] | None = None) -> int:
        """How many tenants a sync would go through (for a progress bar)."""
        wanted = None if tenants is None else sorted(set(tenants))
        with self.db.session() as session:
            return TenantRepository(session).count_metered(BILLABLE, wanted)

    def _check_tenants(self, wanted: list[str], report: SyncReport,
                       on_result: Callable[[TenantResult], None] | None) -> None:
        with self.db.session() as session:
            known = TenantRepository(session).metering_facts(wanted)
        for tenant_id in wanted:
            facts = known.get(tenant_id)
            if facts is None:
                raise unknown_tenant(tenant_id)
            reason = None
            if not facts.customer_id:
                reason = "no Stripe customer"
            elif not facts.subscription_id or not facts.overage_price_id:
                reason = "no subscription with a metered price"
            elif facts.status not in BILLABLE:
                reason = f"subscription is {facts.status}"
            if reason:
                skipped = TenantResult(tenant_id, "skipped", reason=reason)
                report.add(skipped)
                if on_result:
                    on_result(skipped)

    def _targets(self, wanted: list[str] | None) -> Iterator[list[MeteredTenant]]:
        """Billable tenants in chunks, by tenant id (keyset pages: no offset scans)."""
        after = ""
        while True:
            with self.db.session() as session:
                chunk = TenantRepository(session).metered(
                    BILLABLE, tenant_ids=wanted, after=after, limit=self.options.chunk_size)
            if not chunk:
                return
            yield chunk
            after = chunk[-1].tenant_id

    # --- planning (main thread: the database and the store) --------------------------------

    def _prepare(self, chunk: list[MeteredTenant], plan: _Plan) -> list[_Job]:
        first = min(plan.first_day(t) for t in chunk)
        ids = [t.tenant_id for t in chunk]
        start, _ = day_bounds(first)
        _, end = day_bounds(plan.last)
        day_totals: dict[tuple[str, date], int] = {
            (d.tenant_id, d.day): d.total
            for d in self.store.daily_totals(ids, BILLED_METRIC, start, end)}
        with self.db.session() as session:
            rows = UsageLedgerRepository(session).entries(ids, BILLED_METRIC, first, plan.last)
        by_tenant: dict[str, list[UsageLedgerEntry]] = {}
        for row in rows:
            by_tenant.setdefault(row.tenant_id, []).append(row)
        jobs: list[_Job] = []
        new_rows: list[NewEntry] = []
        for target in chunk:
            job = _Job(target, TenantResult(target.tenant_id))
            ledger = by_tenant.get(target.tenant_id, [])
            self._pending(job, ledger, plan)
            new_rows += self._deltas(job, ledger, day_totals, plan)
            jobs.append(job)
        if new_rows:
            with self.db.session() as session:
                inserted = UsageLedgerRepository(session).add_pending(new_rows, self.wall())
        else:
            inserted = {}
        by_id = {job.target.tenant_id: job for job in jobs}
        for entry in new_rows:
            job = by_id[entry.tenant_id]
            row_id = inserted.get(entry.identifier)
            if row_id is None:
                job.result.mark("skipped", f"another sync took {entry.identifier} first; "
                                "run again to report the rest", retryable=True)
                continue
            job.new.append(_Send(row_id, entry.identifier, entry.event_name, entry.customer_id,
                                 entry.quantity, entry.event_timestamp, entry.kind))
        if any(job.stale for job in jobs):
            self._sent_in_minutes(jobs)
        return jobs

    def _pending(self, job: _Job, ledger: list[UsageLedgerEntry], plan: _Plan) -> None:
        """Sort the tenant's pending rows: young ones are resent as they are, old ones are
        first looked up in Stripe (see adapters/db/usage_ledger.py)."""
        stale: dict[tuple[str, str, datetime], _StaleGroup] = {}
        horizon = self.wall() - DEDUPE_WINDOW
        for row in ledger:
            if row.state != "pending":
                continue
            send = _Send(row.id, row.identifier, row.event_name, row.customer_id,
                         row.quantity, row.event_timestamp, row.kind)
            if row.created_at > horizon:
                job.resend.append(send)
                continue
            minute = slots.floor_minute(row.event_timestamp)
            group = stale.setdefault((row.customer_id, row.event_name, minute),
                                     _StaleGroup([], minute, 0))
            group.rows.append(send)
        job.stale = list(stale.values())

    def _deltas(self, job: _Job, ledger: list[UsageLedgerEntry],
                day_totals: dict[tuple[str, date], int], plan: _Plan) -> list[NewEntry]:
        target = job.target
        boundaries = [b for b in (target.period_start, target.period_end) if b is not None]
        boundaries += plan.extra_boundaries
        until = plan.until
        ended = target.ended  # usage counts until the subscription ended
        if ended is not None:
            until = min(until, ended) if until else ended
        counted: dict[date, list[UsageLedgerEntry]] = {}
        next_seq: dict[date, int] = {}
        for row in ledger:
            next_seq[row.day] = max(next_seq.get(row.day, 0), row.seq)
            if row.state in COUNTED:  # a row's timestamp lies in its own day
                counted.setdefault(row.day, []).append(row)
        out: list[NewEntry] = []
        for slot in slots.slots_between(plan.first_day(target), plan.last, boundaries, until):
            if plan.only is not None and slot.day not in plan.only:
                continue
            total = self._slot_total(target.tenant_id, slot, day_totals)
            reported = sum(r.quantity for r in counted.get(slot.day, ())
                           if slot.start <= r.event_timestamp < slot.end)
            delta = total - reported
            if delta == 0:
                continue
            moment = slots.event_timestamp(slot, plan.now)
            if moment is None:
                if slots.expired(slot, plan.now):
                    job.result.mark("failed", f"{delta:+} {BILLED_METRIC} on {slot.day} "
                                    "are older than Stripe's 35-day window and cannot be "
                                    "reported")
                continue  # not begun yet: a later run reports it
            seq = next_seq.get(slot.day, 0) + 1
            next_seq[slot.day] = seq
            ident = slots.identifier(target.tenant_id, BILLED_METRIC, slot.day, seq)
            out.append(NewEntry(target.tenant_id, BILLED_METRIC, slot.day, seq, ident,
                                self.event_name, target.customer_id, slot.start, moment,
                                delta, "usage" if delta > 0 else "correction"))
            if delta < 0:
                log.warning("usage correction for tenant %s: %s %s on %s fell to %d, %d were "
                            "reported; sending %d as %s", target.tenant_id, BILLED_METRIC,
                            "total", slot.day, total, reported, delta, ident)
        return out

    def _slot_total(self, tenant_id: str, slot: slots.Slot,
                    day_totals: dict[tuple[str, date], int]) -> int:
        start, end = day_bounds(slot.day)
        if (slot.start, slot.end) == (start, end):
            return day_totals.get((tenant_id, slot.day), 0)
        if day_totals.get((tenant_id, slot.day), 0) == 0:
            return 0
        return self.store.total(tenant_id, BILLED_METRIC, slot.start, slot.end)

    def _sent_in_minutes(self, jobs: list[_Job]) -> None:
        with self.db.session() as session:
            repo = UsageLedgerRepository(session)
            for job in jobs:
                for group in job.stale:
                    first = group.rows[0]
                    group.sent_before = repo.sent_between(
                        job.target.tenant_id, first.customer_id, first.event_name,
                        group.minute, group.minute + slots.MINUTE)

    # --- sending (pool threads: Stripe only, no database) ----------------------------------

    def _run(self, job: _Job) -> list[EntryOutcome]:
        outcomes: list[EntryOutcome] = []
        result = job.result
        try:
            for send in job.resend:
                if not self._attempt(send, result, outcomes):
                    return outcomes
            for group in job.stale:
                if not self._resolve_stale(group, result, outcomes):
                    return outcomes
            for send in job.new:
                if not self._attempt(send, result, outcomes):
                    return outcomes
        except Exception as error:  # anything unexpected fails this tenant only
            log.exception("usage sync of tenant %s failed", job.target.tenant_id)
            result.mark("failed", f"{type(error).__name__}: {error}", retryable=True)
        return outcomes

    def _attempt(self, send: _Send, result: TenantResult,
                 outcomes: list[EntryOutcome]) -> bool:
        """Send one row; False when the tenant's remaining rows should wait for a later run."""
        at = self.wall()
        result.calls += 1
        try:
            self.meters.send_meter_event(
                event_name=send.event_name, customer_id=send.customer_id, value=send.quantity,
                value_key=self.catalog.meter.value_key, timestamp=send.timestamp,
                identifier=send.identifier,
                idempotency_key=slots.idempotency_key(send.identifier))
        except StripeInvalidRequest as error:
            outcomes.append(EntryOutcome(send.id, "failed", at, _reason(error)))
            result.mark("failed", f"Stripe refused {send.identifier}: {error.message}")
            return True  # nothing was recorded; the tenant's other rows may still go
        except (MeterbillError, OSError) as error:
            outcomes.append(EntryOutcome(send.id, "pending", at, _reason(error)))
            result.mark("failed", f"{send.identifier} not confirmed: {error}", retryable=True)
            return False
        outcomes.append(EntryOutcome(send.id, "sent", at))
        if send.quantity >= 0:
            result.sent += send.quantity
            metrics.count("usage_quantity_reported", send.quantity)
            result.mark("sent")
        else:
            result.corrected += -send.quantity
            result.mark("corrected")
        return True

    def _resolve_stale(self, group: _StaleGroup, result: TenantResult,
                       outcomes: list[EntryOutcome]) -> bool:
        first = group.rows[0]
        result.calls += 1
        try:
            meter_id = self.meters.meter_id(first.event_name)
            stripe_total = self.meters.meter_usage(meter_id=meter_id,
                                                   customer_id=first.customer_id,
                                                   start=group.minute,
                                                   end=group.minute + slots.MINUTE)
        except MeterbillError as error:
            result.mark("failed", f"could not check old pending events: {error}",
                        retryable=error.retryable)
            return False
        arrived = stripe_total - group.sent_before
        pending = sum(r.quantity for r in group.rows)
        if arrived == pending:  # Stripe has them all: the crash came after the call
            outcomes += [EntryOutcome(r.id, "sent", None) for r in group.rows]
            for row in group.rows:
                result.sent += max(row.quantity, 0)
                result.corrected += max(-row.quantity, 0)
            result.mark("sent")
            return True
        if arrived == 0:  # none arrived: the identifiers were never used, send them now
            return all(self._attempt(r, result, outcomes) for r in group.rows)
        ids = ", ".join(r.identifier for r in group.rows)
        log.error("ADMIN ALERT: Stripe's meter shows %d in the minute %s for customer %s but "
                  "our pending events %s add %d (sent before: %d); left pending for review",
                  stripe_total, group.minute.isoformat(), first.customer_id, ids, pending,
                  group.sent_before)
        result.mark("failed", f"pending events {ids} cannot be matched with Stripe's meter "
                    "(admin alert logged)")
        return False

    # --- recording (main thread) -------------------------------------------------------------

    def _finish(self, jobs: list[_Job], futures: list[Future[list[EntryOutcome]]],
                report: SyncReport, on_result: Callable[[TenantResult], None] | None) -> None:
        outcomes: list[EntryOutcome] = []
        for future in futures:
            outcomes += future.result()  # a BaseException (a crash) propagates from here
        with self.db.session() as session:
            UsageLedgerRepository(session).record(outcomes, self.wall())
        for job in jobs:
            report.add(job.result)
            if on_result:
                on_result(job.result)


class DeferredFlush:
    """A `UsageFlushPort` that builds the sync on its first flush: wiring webhooks must not
    open the usage store (a DuckDB file admits one process) for commands that never flush."""

    def __init__(self, factory: Callable[[], UsageSyncService]) -> None:
        self.factory = factory

    def flush(self, customer_id: str, period_end: datetime) -> None:
        self.factory().flush(customer_id, period_end)


@dataclass(frozen=True)
class _Plan:
    first: date
    last: date
    only: set[date] | None
    open_periods: bool
    until: datetime | None
    extra_boundaries: tuple[datetime, ...]
    now: datetime

    def first_day(self, target: MeteredTenant) -> date:
        """Where this tenant's slots start: the run's first day, or its open period's first
        day (never beyond Stripe's 35 days: older usage is asked for with `--since`)."""
        if self.open_periods and target.period_start is not None:
            oldest = (self.now - PAST_WINDOW).date() + timedelta(days=1)
            return min(self.first, max(oldest, target.period_start.astimezone(UTC).date()))
        return self.first


def _reason(error: Exception) -> str:
    request_id = getattr(error, "request_id", None)
    text = f"{type(error).__name__}: {error}"
    return f"{text} (request {request_id})" if request_id else text
