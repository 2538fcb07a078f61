"""Usage reconciliation: the usage store's totals against Stripe's meter, per tenant and period.

For each tenant with a Stripe customer and a metered subscription, over a window:
- ours: the store's deduplicated total of `queries` in the window;
- Stripe's: the meter's event summary for the customer over the same window (minute-aligned,
  which is exact because sync stamps events clear of a boundary's partial minute; see
  `domain.usage_slots`);
- the ledger's: what sync says it reported there (to tell "not synced yet", ours ≠ ledger,
  from "lost or doubled in Stripe", ledger ≠ Stripe).

Any difference between ours and Stripe's is a drift: recorded in `usage_drift`, logged as an
ADMIN ALERT. We expect 0 (the seeds alerted only above 5%).

Windows: "current" is each tenant's current billing period, YYYY-MM a calendar month (UTC);
both end at `through` (by default the start of today, UTC), because today's usage is still
arriving and is reported by the next sync. Stripe processes meter events asynchronously, so a
reconciliation seconds after a sync may, on real Stripe, still see a lag.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from ...adapters.db.repositories import TenantRepository
from ...adapters.db.session import Database
from ...adapters.db.usage_ledger import UsageDrift, UsageDriftRepository, UsageLedgerRepository
from ...domain import usage_slots as slots
from ...domain.clock import Clock, utcnow
from ...domain.errors import MeterbillError
from ...domain.plans import Catalog
from ...domain.usage import month_bounds, parse_period
from ...ports.meters import MeterEventsPort
from ...ports.usage_store import UsageStore
from ..billing.tenants import unknown_tenant
from .repair import Repair, UsageRepair
from .sync import BILLABLE, BILLED_METRIC, SyncOptions, SyncReport, UsageSyncService

log = logging.getLogger("meterbill.usage")



@dataclass
class TenantReconciliation:
    tenant_id: str
    customer_id: str
    start: datetime
    end: datetime
    ours: int = 0
    stripe: int = 0
    ledger: int = 0
    status: str = "ok"  # ok | drift | failed | skipped
    reason: str | None = None

    @property
    def diff(self) -> int:
        return self.ours - self.stripe

    def to_dict(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "customer_id": self.customer_id,
                "start": self.start.isoformat(), "end": self.end.isoformat(),
                "ours": self.ours, "stripe": self.stripe, "ledger": self.ledger,
                "diff": self.diff, "status": self.status, "reason": self.reason}


@dataclass
class ReconcileReport:
    period: str
    through: datetime
    checked_at: datetime
    tenants: list[TenantReconciliation] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)  # what `repair=True` did

    @property
    def drifts(self) -> list[TenantReconciliation]:
        return [t for t in self.tenants if t.status == "drift"]

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(1 for t in self.tenants if t.status == s)
                  for s in ("ok", "drift", "failed", "skipped")}
        return {"period": self.period, "through": self.through.isoformat(),
                "checked_at": self.checked_at.isoformat(), "counts": counts,
                "tenants": [t.to_dict() for t in self.tenants]}


class UsageReconciler:
    def __init__(self, db: Database, store: UsageStore, meters: MeterEventsPort,
                 catalog: Catalog, options: SyncOptions | None = None, *,
                 clock: Clock = utcnow, wall: Clock = utcnow,
                 repairer: UsageRepair | None = None) -> None:
        self.repairer = repairer  # fixes Stripe's side when asked (services/usage/repair.py)
        self.db = db
        self.store = store
        self.meters = meters
        self.catalog = catalog
        self.options = options or SyncOptions()
        self.clock = clock
        self.wall = wall

    def reconcile(self, period: str | None = None, *, tenants: Collection[str] | None = None,
                  through: datetime | None = None, record: bool = True,
                  repair: bool = False) -> ReconcileReport:
        """Compare every billable tenant (or `tenants`) over `period` ("current" or YYYY-MM);
        drifts are recorded and alerted unless `record` is False. With `repair`, a tenant
        whose Stripe meter differs from the ledger is repaired and compared again."""
        now = self.clock()
        choice = parse_period(period, now)
        label = choice.label
        month = None if choice.month is None else month_bounds(choice.month)
        cutoff = through or datetime.combine(now.date(), time.min, tzinfo=UTC)
        report = ReconcileReport(label, cutoff, self.wall())
        wanted = None if tenants is None else sorted(set(tenants))
        checks: list[TenantReconciliation] = []
        for tenant_id, customer_id, start, end in self._targets(wanted):
            if month is not None:
                start, end = month
            if start is None or end is None:
                checks.append(TenantReconciliation(tenant_id, customer_id, cutoff, cutoff,
                                                   status="skipped",
                                                   reason="no billing period known"))
                continue
            check = TenantReconciliation(tenant_id, customer_id, start, min(end, cutoff))
            if check.end <= start:
                check.status, check.reason = "skipped", "nothing to compare before the cutoff"
            checks.append(check)
        if not any(c.status != "skipped" for c in checks):
            report.tenants = checks
            return report
        meter_id = self.meters.meter_id(self.catalog.meter.event_name)
        with ThreadPoolExecutor(max_workers=max(1, self.options.concurrency),
                                thread_name_prefix="usage-reconcile") as pool:
            list(pool.map(lambda c: self._check(c, meter_id), checks))
        if repair and self.repairer is not None:
            report.repairs = self._repair(checks, meter_id)
        report.tenants = checks
        if record and report.drifts:
            self._record(report)
        return report

    def _targets(self, wanted: list[str] | None
                 ) -> Iterator[tuple[str, str, datetime | None, datetime | None]]:
        with self.db.session() as session:
            tenants = TenantRepository(session)
            rows = tenants.metered(BILLABLE, tenant_ids=wanted)
            if wanted is not None:
                known = tenants.existing_ids(wanted)
                missing = [t for t in wanted if t not in known]
                if missing:
                    raise unknown_tenant(missing[0])
        for row in rows:
            # Usage after a cancellation is neither billed nor sent: not compared either.
            end = row.period_end
            if row.ended is not None and end is not None:
                end = min(end, row.ended)
            yield row.tenant_id, row.customer_id, row.period_start, end

    def _check(self, check: TenantReconciliation, meter_id: str) -> None:
        if check.status == "skipped":
            return
        start, end = check.start, check.end
        try:
            check.ours = self.store.total(check.tenant_id, BILLED_METRIC, start, end)
            window = slots.summary_window(start, end)
            check.stripe = self.meters.meter_usage(meter_id=meter_id,
                                                   customer_id=check.customer_id,
                                                   start=window[0], end=window[1])
            with self.db.session() as session:
                check.ledger = UsageLedgerRepository(session).reported(
                    check.tenant_id, BILLED_METRIC, start, end)
        except (MeterbillError, OSError) as error:
            check.status, check.reason = "failed", f"{type(error).__name__}: {error}"
            return
        if check.diff:
            check.status = "drift"
            check.reason = _explain(check)

    def _repair(self, checks: list[TenantReconciliation], meter_id: str) -> list[Repair]:
        assert self.repairer is not None
        done: list[Repair] = []
        for check in checks:
            if check.status != "drift" or check.ledger == check.stripe:
                continue  # only Stripe's side is repaired; the sync sends what is not yet
            done.extend(self.repairer.repair(check.tenant_id, check.customer_id,
                                             BILLED_METRIC, check.start, check.end, meter_id))
            check.status, check.reason = "ok", None
            self._check(check, meter_id)
            settled = self.repairer.adjusted(check.tenant_id, BILLED_METRIC, check.start,
                                             check.end)
            if check.status == "drift" and settled and check.diff == settled:
                check.status = "ok"  # the rest is on the customer's next invoice
                check.reason = f"{settled:+d} settled by an invoice adjustment"
        return done

    def _record(self, report: ReconcileReport) -> None:
        with self.db.session() as session:
            repo = UsageDriftRepository(session)
            for check in report.drifts:
                repo.add(UsageDrift(
                    tenant_id=check.tenant_id, metric=BILLED_METRIC,
                    customer_id=check.customer_id, period_label=report.period,
                    period_start=check.start, period_end=check.end, ours=check.ours,
                    stripe=check.stripe, ledger=check.ledger, diff=check.diff,
                    found_at=report.checked_at))
        for check in report.drifts:
            log.error("ADMIN ALERT: usage drift for tenant %s (%s, %s to %s): the usage store "
                      "has %d %s, Stripe's meter %d (diff %+d); %s", check.tenant_id,
                      report.period, check.start.isoformat(), check.end.isoformat(),
                      check.ours, BILLED_METRIC, check.stripe, check.diff, check.reason)


def _explain(check: TenantReconciliation) -> str:
    if check.ledger == check.stripe:
        return (f"{check.ours - check.ledger:+d} not synced yet: run `meterbill usage sync` "
                "(a late event, or a run that failed)")
    if check.ours == check.ledger:
        return (f"Stripe differs from what the ledger says was sent by "
                f"{check.stripe - check.ledger:+d}: events lost or reported by something else")
    return "the store, the ledger and Stripe all differ: check `meterbill usage sync` output"


def daily_job(sync: UsageSyncService, reconciler: UsageReconciler) -> dict[str, Any]:
    """The scheduled run: sync yesterday, today and every open period, then reconcile."""
    report: SyncReport = sync.sync()
    for failed in report.failed:
        log.warning("usage sync: tenant %s failed: %s", failed.tenant_id, failed.reason)
    reconciled = reconciler.reconcile(repair=True)
    log.info("usage sync: %s; reconciliation: %d drift(s), %d repair(s)", report.counts,
             len(reconciled.drifts), len(reconciled.repairs))
    return {"sync": dict(report.counts), "drifts": len(reconciled.drifts),
            "repairs": len(reconciled.repairs)}
