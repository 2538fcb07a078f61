"""The seeds' manual usage report: "tenant T's subscription S used N queries on day D".

Made safe and exact by going through the store and the sync instead of straight to Stripe:
1. the day's deduplicated total in the usage store is read; if N is higher, ONE event with the
   difference is stored under a deterministic id, `manual:{tenant}:{day}:{N}`, so the day's
   total becomes N (repeating the same report, or two racing copies of it, store it once);
   if N is not higher, nothing is stored (a report never takes usage back: delete events);
2. that tenant-day is synced, and the answer says what was sent to Stripe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ...adapters.db.repositories import TenantRepository
from ...adapters.db.session import Database
from ...domain.errors import MeterbillError
from ...domain.usage import PAST_WINDOW, UsageEvent, day_bounds, whole_seconds
from ...ports.usage_store import UsageStore
from ..billing.tenants import unknown_tenant
from .sync import BILLED_METRIC, UsageSyncService


class InvalidReport(MeterbillError):
    status = 422
    default_code = "invalid_usage_report"


@dataclass(frozen=True)
class ReportResult:
    tenant_id: str
    subscription_id: str
    day: date
    query_count: int
    previous_total: int
    added: int
    sync: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "subscription_id": self.subscription_id,
                "date": self.day.isoformat(), "query_count": self.query_count,
                "previous_total": self.previous_total, "added": self.added,
                "stored_total": self.previous_total + self.added, "sync": self.sync}


class ManualUsageReports:
    def __init__(self, db: Database, store: UsageStore, sync: UsageSyncService) -> None:
        self.db = db
        self.store = store
        self.sync = sync

    def report(self, tenant_id: str, subscription_id: str, query_count: int,
               day: date | None = None) -> ReportResult:
        now = self.sync.clock()
        day = day or now.date()
        self._check(tenant_id, subscription_id, query_count, day, now.date())
        start, end = day_bounds(day)
        previous = self.store.total(tenant_id, BILLED_METRIC, start, end)
        added = max(0, query_count - previous)
        if added:
            # Inside the day and never in the future: Stripe refuses events over 5 min ahead.
            moment = whole_seconds(min(now, end - timedelta(seconds=1)))
            self.store.insert([UsageEvent(f"manual:{tenant_id}:{day.isoformat()}:{query_count}",
                                          tenant_id, BILLED_METRIC, added, moment,
                                          whole_seconds(self.sync.wall()))])
        report = self.sync.sync(days=[day], tenants=[tenant_id])
        result = next(t for t in report.tenants if t.tenant_id == tenant_id)
        return ReportResult(tenant_id, subscription_id, day, query_count, previous, added,
                            result.to_dict())

    def _check(self, tenant_id: str, subscription_id: str, query_count: int, day: date,
               today: date) -> None:
        if isinstance(query_count, bool) or not isinstance(query_count, int) or query_count < 0:
            raise InvalidReport("query_count must be a whole number of 0 or more",
                                field="query_count")
        with self.db.session() as session:
            tenant = TenantRepository(session).get(tenant_id)
            if tenant is None:
                raise unknown_tenant(tenant_id)
            current = tenant.stripe_subscription_id
        if subscription_id != current:
            owner = f"its subscription is {current}" if current else "it has no subscription"
            raise InvalidReport(f"Subscription {subscription_id} is not tenant {tenant_id}'s: "
                                f"{owner}.", field="subscription_id")
        earliest = today - timedelta(days=PAST_WINDOW.days - 1)
        if not earliest <= day <= today:
            raise InvalidReport(f"date {day.isoformat()} is outside what Stripe's meters take: "
                                f"from {earliest.isoformat()} to {today.isoformat()} (today).",
                                field="date")
