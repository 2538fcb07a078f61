"""The issue's end-to-end: a Pro tenant uses 125,000 queries in a period, with duplicates, late
events, several syncs, a crash between a Stripe call and the ledger write, the last partial day
flushed on `invoice.created`, and usage after the period end; the sandbox's invoice for the
period is exactly 11,900 cents (9,900 base + 25,000 × $0.0008).

On DuckDB always; on ClickHouse too when METERBILL_TEST_CLICKHOUSE_URL is set (a database of
its own, a fresh table per test)."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import build_webhooks
from meterbill.ports.usage_store import UsageStore
from meterbill.services.usage.sync import UsageSyncService
from stripe_sandbox import Sandbox
from stripe_sandbox.listing import public
from stripe_sandbox.wire import dumps
from tests.meterbill.webhooks.conftest import ManualRunner, make_options, sign

from .clickhouse import needs_clickhouse
from .sync_helpers import METER_EVENTS, PERIOD_END, START, World, event, make_world, spread

DAY = timedelta(days=1)
_tables = itertools.count()


@pytest.fixture(params=["duckdb", pytest.param("clickhouse", marks=needs_clickhouse)])
def usage_store(request: pytest.FixtureRequest, container: Container) -> Iterator[UsageStore]:
    if request.param == "duckdb":
        yield container.usage_store  # duckdb:///:memory:, closed with the container
        return
    from meterbill.adapters.usage.clickhouse_store import ClickHouseUsageStore

    store = ClickHouseUsageStore(request.getfixturevalue("clickhouse_db"),
                                 table=f"sync_{next(_tables)}_{uuid.uuid4().hex[:6]}")
    # The container's own parts (invoice verification) read this store too.
    container.__dict__[Container.usage_store.slot] = store
    yield store
    store.close()


class Crash(BaseException):
    """The process dying: not an error any handler catches."""


class CrashAfterCall:
    """Meters that die right after Stripe answered the `crash_on`-th send (so the ledger
    never hears of it), and from then on, like a dead process, send nothing."""

    def __init__(self, inner: Any, crash_on: int) -> None:
        self.inner = inner
        self.crash_on = crash_on
        self.sends = 0

    def send_meter_event(self, **kwargs: Any) -> Any:
        self.sends += 1
        if self.sends > self.crash_on:
            raise Crash("already dead")
        answer = self.inner.send_meter_event(**kwargs)
        if self.sends == self.crash_on:
            raise Crash("killed between the Stripe call and the ledger write")
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def deliver(world: World, sync: UsageSyncService, event_obj: dict[str, Any]) -> list[Any]:
    """Send one sandbox event through meterbill's webhook intake and processor."""
    runner = ManualRunner()
    hooks = build_webhooks(world.container, options=make_options(), runner=runner, usage=sync)
    runner.components = hooks
    try:
        body = dumps(public(event_obj))
        hooks.intake.submit(body, sign(body, timestamp=int(time.time()))).result(timeout=10)
        hooks.intake.close()  # hands the committed row over to the runner
        return runner.run_all()
    finally:
        hooks.close()


def test_125k_queries_invoice_exactly_11900_cents(container: Container, sandbox: Sandbox,
                                                  usage_store: UsageStore) -> None:
    world = make_world(container, sandbox)
    tenant = world.subscribe("acme", "pro")
    sync = world.sync_service(store=usage_store, concurrency=4)

    # Days 0-9: 60,000 queries, 50 of the events sent twice.
    early = spread("acme", 60_000, START + timedelta(hours=1), 9, prefix="early")
    world.advance(START + 10 * DAY)
    usage_store.insert(early + early[:50])
    first = sync.sync(since=START.date())
    assert first.tenants[0].sent == 60_000 and world.meter_total("acme") == 60_000

    # Days 10-19: 40,000, plus 5,000 late events for days 2-3 that were already synced.
    middle = spread("acme", 40_000, START + 10 * DAY, 9, prefix="middle")
    late = spread("acme", 5_000, START + 2 * DAY, 2, prefix="late")
    world.advance(START + 20 * DAY)
    usage_store.insert(middle + late + early[100:120])
    crashing = CrashAfterCall(world.meters(), crash_on=3)
    with pytest.raises(Crash):
        world.sync_service(store=usage_store, meters=crashing, concurrency=1).sync(
            since=START.date())
    pending = [r for r in world.ledger("acme") if r.state == "pending"]
    assert pending, "the crashed run leaves its rows pending"
    world.counting.reset()
    sync.sync(since=START.date())  # resends the pending rows with their keys: no double count
    assert world.meter_total("acme") == 105_000
    assert {r.state for r in world.ledger("acme")} == {"sent"}

    # Days 20-30: 19,000 more; synced twice, the second time sending nothing.
    late_month = spread("acme", 19_000, START + 20 * DAY, 10, prefix="late-month")
    world.advance(PERIOD_END - timedelta(hours=3))
    usage_store.insert(late_month)
    sync.sync()
    world.counting.reset()
    assert sync.sync().tenants[0].status == "unchanged"
    assert world.counting.total() == 0
    assert world.meter_total("acme") == 124_000

    # The period's last hours (after the last sync) and the next period's first hour.
    last_hours = spread("acme", 1_000, PERIOD_END - timedelta(hours=2), 0.08, prefix="last")
    next_period = spread("acme", 7_000, PERIOD_END + timedelta(seconds=10), 0.04, prefix="next")
    usage_store.insert(last_hours + next_period + last_hours[:5])
    assert max(e.occurred_at for e in last_hours) < PERIOD_END

    # The period ends: Stripe makes the renewal invoice as a draft and says so.
    world.advance(PERIOD_END + timedelta(seconds=30))
    created = [e for e in sandbox.store.all("event") if e["type"] == "invoice.created"
               and e["data"]["object"]["customer"] == tenant.customer_id
               and e["data"]["object"]["billing_reason"] == "subscription_cycle"]
    assert len(created) == 1
    results = deliver(world, sync, created[0])
    assert [r.outcome for r in results] == ["handled"], results
    assert world.meter_total("acme") == 125_000  # the flush sent the last hours, nothing after

    # An hour later Stripe finalizes and charges it.
    world.advance(PERIOD_END + timedelta(hours=2))
    invoice = world.client.v1.invoices.retrieve(created[0]["data"]["object"]["id"])
    assert invoice.status == "paid"
    assert invoice.total == 11_900
    metered = [line for line in invoice.lines.data if line.quantity == 125_000]
    assert len(metered) == 1
    # The next period's usage waits for the next invoice.
    assert world.meter_total("acme", PERIOD_END, PERIOD_END + DAY) == 0
    sync.sync()
    assert world.meter_total("acme", PERIOD_END, PERIOD_END + DAY) == 7_000


def test_a_lowered_total_reaches_the_invoice(container: Container, sandbox: Sandbox) -> None:
    world = make_world(container, sandbox)
    tenant = world.subscribe("acme", "pro")
    store = container.usage_store
    sync = world.sync_service()
    usage = spread("acme", 120_000, START + DAY, 5, prefix="u")
    world.advance(START + 7 * DAY)
    store.insert(usage)
    sync.sync(since=START.date())
    # 10,000 of them turn out to be test traffic.
    store.delete_events([e.event_id for e in usage[:100]])
    report = sync.sync(since=START.date())
    assert report.tenants[0].corrected == 10_000
    world.advance(PERIOD_END + timedelta(hours=2))
    invoices = world.client.v1.invoices.list(params={"customer": tenant.customer_id})
    renewal = next(i for i in invoices.data if i.billing_reason == "subscription_cycle")
    assert renewal.total == 9_900 + 800  # 10,000 over the included 100,000 at $0.0008


def test_meter_events_per_tenant_day(container: Container, sandbox: Sandbox) -> None:
    """The calls a sync makes: exactly one per tenant-day with usage, nothing else."""
    world = make_world(container, sandbox)
    names = [f"t{i}" for i in range(5)]
    for name in names:
        world.subscribe(name)
    world.advance(START + 4 * DAY)
    container.usage_store.insert([event(t, START + d * DAY, 1 + d) for t in names
                                  for d in (1, 2, 3)] + [event("t0", START + DAY, 1)])
    report = world.sync_service().sync(since=START.date())
    assert world.counting.requests == {METER_EVENTS: 15}
    assert report.calls == 15
    stamps = {r.event_timestamp for r in world.ledger("t0")}
    # Past days are stamped at their last whole second, inside the day.
    assert stamps == {datetime.combine((START + d * DAY).date(), datetime.max.time(),
                                       tzinfo=UTC).replace(microsecond=0) for d in (1, 2, 3)}


def test_usage_counts_until_a_period_end_cancellation_ends_it(container: Container,
                                                             sandbox: Sandbox) -> None:
    """Stripe's `canceled_at` is when a cancellation at the period end was asked for; usage
    counts until `ended_at`. A sync after the end once took `canceled_at` as the end and sent
    the part of that day before it a second time."""
    world = make_world(container, sandbox)
    tenant = world.subscribe("acme", "pro")
    sync = world.sync_service()
    container.subscriptions.clock = world.now
    day = START + 10 * DAY
    world.advance(day + timedelta(hours=2))
    container.usage_store.insert([event("acme", day, 300)])
    container.subscriptions.cancel(tenant.subscription_id, at_period_end=True)
    world.advance(day + timedelta(hours=5))
    container.usage_store.insert([event("acme", day + timedelta(hours=4), 200)])
    world.advance(day + DAY)
    sync.sync()
    late = spread("acme", 1_000, PERIOD_END - 3 * DAY, 2, prefix="late")
    world.advance(PERIOD_END - DAY)
    container.usage_store.insert(late)
    world.advance(PERIOD_END + timedelta(hours=2))  # ended; meterbill hears of it
    ended = [e for e in sandbox.store.all("event") if e["type"] ==
             "customer.subscription.deleted"]
    assert [r.outcome for r in deliver(world, sync, ended[0])] == ["handled"]
    sync.sync(since=START.date())
    assert world.meter_total("acme", START, PERIOD_END + DAY) == 1_500
