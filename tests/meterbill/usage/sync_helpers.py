"""Shared set-up for the usage sync tests: tenants subscribed on a sandbox test clock, a sync
service on that clock, requests counted by path, and usage events."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import stripe

from meterbill.adapters.db.models import Tenant
from meterbill.adapters.db.repositories import TenantRepository
from meterbill.adapters.db.usage_ledger import UsageLedgerEntry
from meterbill.adapters.stripe_meters import RetryPolicy, StripeMeters
from meterbill.bootstrap import Container
from meterbill.domain.usage import UsageEvent
from meterbill.ports.usage_store import UsageStore
from meterbill.services.usage.reconcile import UsageReconciler
from meterbill.services.usage.sync import SyncOptions, UsageSyncService
from stripe_sandbox import Sandbox, SandboxHTTPClient

# Periods start off the minute and mid-day, so boundary days split and summaries need care.
START = datetime(2026, 1, 5, 9, 17, 23, tzinfo=UTC)
PERIOD_END = datetime(2026, 2, 5, 9, 17, 23, tzinfo=UTC)
METER_EVENTS = ("POST", "/v1/billing/meter_events")
_ids = itertools.count()


class CountingClient(SandboxHTTPClient):
    """The in-process sandbox client, counting requests by (method, path)."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(sandbox)
        self.requests: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def request(self, method: str, url: str, headers: Any, post_data: Any = None, *,
                _usage: Any = None) -> Any:
        with self._lock:
            self.requests[(method.upper(), urlsplit(url).path)] += 1
        return super().request(method, url, headers, post_data, _usage=_usage)

    def total(self) -> int:
        return sum(self.requests.values())

    def reset(self) -> None:
        self.requests.clear()


def no_sleep(seconds: float) -> None:
    return None


@dataclass
class Subscribed:
    tenant_id: str
    customer_id: str
    subscription_id: str


@dataclass
class World:
    """meterbill on the test's sandbox, its tenants on one test clock."""

    container: Container
    sandbox: Sandbox
    client: stripe.StripeClient
    clock_id: str
    counting: CountingClient
    tenants: dict[str, Subscribed] = field(default_factory=dict)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.sandbox.now(self.clock_id), UTC)

    def advance(self, to: datetime) -> None:
        self.client.v1.test_helpers.test_clocks.advance(
            self.clock_id, params={"frozen_time": int(to.timestamp())})

    def subscribe(self, tenant_id: str, plan: str = "pro") -> Subscribed:
        customer = self.client.v1.customers.create(params={
            "email": f"{tenant_id}@example.com", "test_clock": self.clock_id,
            "metadata": {"tenant_id": tenant_id}})
        with self.container.db.session() as session:
            TenantRepository(session).claim_customer(tenant_id, f"{tenant_id}@example.com",
                                                     None, customer.id)
        view = self.container.subscriptions.create(tenant_id, customer.id, plan, trial_days=0,
                                                   payment_method_id="pm_card_visa")
        # The first invoice is charged at creation: the subscription starts active.
        assert view.status == "active"
        made = Subscribed(tenant_id, customer.id, view.id)
        self.tenants[tenant_id] = made
        return made

    def meters(self, retry: RetryPolicy | None = None) -> StripeMeters:
        client = stripe.StripeClient("sk_test_sandbox", http_client=self.counting,
                                     max_network_retries=0)
        return StripeMeters(client, retry or RetryPolicy(sleep=no_sleep))

    def sync_service(self, store: UsageStore | None = None, meters: Any = None,
                     wall: Callable[[], datetime] | None = None,
                     **options: Any) -> UsageSyncService:
        kwargs: dict[str, Any] = {"clock": self.now}
        if wall is not None:
            kwargs["wall"] = wall
        return UsageSyncService(self.container.db, store or self.container.usage_store,
                                meters or self.meters(), self.container.catalog,
                                SyncOptions(**options), **kwargs)

    def reconciler(self, store: UsageStore | None = None) -> UsageReconciler:
        return UsageReconciler(self.container.db, store or self.container.usage_store,
                               self.meters(), self.container.catalog, clock=self.now)

    def meter_total(self, tenant_id: str, start: datetime = START,
                    end: datetime = PERIOD_END) -> int:
        """What Stripe's meter holds for the tenant's customer in [start, end)."""
        from stripe_sandbox.resources import meters

        meter = next(iter(self.sandbox.store.all("billing.meter")))
        customer = self.tenants[tenant_id].customer_id
        return int(meters.usage_total(self.sandbox, meter["id"], customer,
                                      int(start.timestamp()), int(end.timestamp())))

    def ledger(self, tenant_id: str | None = None) -> list[UsageLedgerEntry]:
        from sqlalchemy import select

        query = select(UsageLedgerEntry).order_by(UsageLedgerEntry.id)
        if tenant_id is not None:
            query = query.where(UsageLedgerEntry.tenant_id == tenant_id)
        with self.container.db.session() as session:
            return list(session.scalars(query))

    def tenant_row(self, tenant_id: str) -> Tenant:
        with self.container.db.session() as session:
            row = TenantRepository(session).get(tenant_id)
            assert row is not None
            return row


def make_world(container: Container, sandbox: Sandbox, start: datetime = START) -> World:
    client = stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox),
                                 max_network_retries=0)
    clock = client.v1.test_helpers.test_clocks.create(
        params={"frozen_time": int(start.timestamp())})
    return World(container, sandbox, client, clock.id, CountingClient(sandbox))


def event(tenant_id: str, at: datetime, quantity: int = 1, event_id: str | None = None,
          metric: str = "queries") -> UsageEvent:
    return UsageEvent(event_id or f"ev-{next(_ids)}", tenant_id, metric,  # type: ignore[arg-type]
                      quantity, at.replace(microsecond=0), at.replace(microsecond=0))


def spread(tenant_id: str, total: int, first: datetime, days: int, per_event: int = 100,
           prefix: str | None = None) -> list[UsageEvent]:
    """`total` units over `days` days from `first`, `per_event` per event, ids `prefix-n`."""
    prefix = prefix or f"{tenant_id}-{next(_ids)}"
    count = total // per_event
    assert count * per_event == total
    step = timedelta(days=days) / count
    return [event(tenant_id, first + step * i, per_event, f"{prefix}-{i}") for i in range(count)]
