"""What a tenant may use right now, for the SaaS to ask on every request.

Served from meterbill's own database (the tenant row, its subscription's status and period,
the newest dunning timeline entry: one indexed statement, decided by `decide_access`), plus the
tenant's usage total for the period from the usage store. The total is reused for
`cache_seconds` (ENTITLEMENT_USAGE_CACHE_SECONDS) per tenant and period: a DuckDB or ClickHouse
query per SaaS request would cost more than all the rest, and a total a few seconds old changes
no access decision. If the usage store cannot be read the answer still comes, with
`used_this_period` null: access must not depend on it.

`etag` is a hash of the answer, so a SaaS that sends `If-None-Match` gets a 304 until
something changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ...adapters.db.repositories import EntitlementRepository
from ...adapters.db.session import Database
from ...domain.access import AccessFacts, decide_access
from ...domain.dunning import GOOD_STANDING, Access, DunningPolicy, DunningState
from ...domain.plans import Catalog
from ...ports.usage_store import UsageStore
from ..billing.tenants import unknown_tenant
from ..views import _View

log = logging.getLogger("meterbill.entitlement")

Monotonic = Callable[[], float]
_MAX_CACHED = 50_000  # entries; expired ones are dropped first when it fills


@dataclass(frozen=True)
class Entitlement(_View):
    tenant_id: str
    access: Access
    rate_limit_multiplier: float
    reason: str
    plan: str | None
    included: int | None
    used_this_period: int | None
    period_start: datetime | None
    period_end: datetime | None
    dunning_state: str

    @property
    def etag(self) -> str:
        body = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'


class UsageTotals:
    """Usage totals per (tenant, metric, period), each reused for `ttl` seconds."""

    def __init__(self, store: Callable[[], UsageStore], ttl: float,
                 clock: Monotonic = time.monotonic) -> None:
        self.store = store  # called on first use: the store opens lazily
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, datetime, datetime], tuple[float, int]] = {}
        self.queries = 0  # how many totals were read from the store (for tests and the bench)

    def total(self, tenant_id: str, metric: str, start: datetime, end: datetime) -> int:
        key = (tenant_id, metric, start, end)
        now = self.clock()
        if self.ttl > 0:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None and hit[0] > now:
                    return hit[1]
        value = self.store().total(tenant_id, metric, start, end)
        with self._lock:
            self.queries += 1
            if self.ttl > 0:
                if len(self._cache) >= _MAX_CACHED:
                    self._evict(now)
                self._cache[key] = (now + self.ttl, value)
        return value

    def _evict(self, now: float) -> None:
        for key in [k for k, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[key]
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()


class EntitlementService:
    def __init__(self, db: Database, catalog: Catalog, policy: DunningPolicy,
                 usage: UsageTotals) -> None:
        self.db = db
        self.catalog = catalog
        self.policy = policy
        self.usage = usage

    def get(self, tenant_id: str) -> Entitlement:
        row = EntitlementRepository(self.db).facts(tenant_id)
        if row is None:
            raise unknown_tenant(tenant_id)
        # The stored facts, decided by the function the one writer of access used
        # (services/access/writer.py), so this answer agrees with the tenant row and summary.
        facts = AccessFacts(
            subscription_status=row.status or "none",
            cancel_at_period_end=bool(row.cancel_at_period_end),
            dunning=DunningState(row.dunning_state or GOOD_STANDING, row.payment_failures or 0),
            subscription_id=row.subscription_id)
        decision = decide_access(self.policy, facts)
        plan_key = row.current_plan
        start, end = row.current_period_start, row.current_period_end
        plan = self.catalog.get(plan_key) if plan_key and plan_key in self.catalog.keys() \
            else None
        used = None
        if plan is not None and start is not None and end is not None:
            used = self._used(tenant_id, plan.meter_event_name, start, end)
        return Entitlement(
            tenant_id=tenant_id, access=decision.access,
            rate_limit_multiplier=decision.rate_limit_multiplier, reason=decision.reason,
            plan=plan_key, included=plan.included_quantity if plan else None,
            used_this_period=used, period_start=start, period_end=end,
            dunning_state=decision.dunning_state)

    def _used(self, tenant_id: str, metric: str, start: datetime, end: datetime) -> int | None:
        try:
            return self.usage.total(tenant_id, metric, start, end)
        except Exception as error:  # noqa: BLE001 - access must not depend on the usage store
            log.warning("usage total of tenant %s unavailable: %s: %s", tenant_id,
                        type(error).__name__, error)
            return None
