"""Usage sync against the sandbox: one meter event per tenant-day, re-runs send nothing, late
events are a further delta, lowered totals are corrected, failures stay with their tenant."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from meterbill.bootstrap import Container
from meterbill.domain.errors import NotFound
from stripe_sandbox import Sandbox
from stripe_sandbox.faults import install as install_faults

from .sync_helpers import METER_EVENTS, START, World, event, make_world

DAY = timedelta(days=1)


@pytest.fixture
def world(container: Container, sandbox: Sandbox) -> Iterator[World]:
    yield make_world(container, sandbox)


def test_one_meter_event_per_tenant_day_and_a_rerun_sends_nothing(world: World) -> None:
    for name in ("acme", "globex", "initech"):
        world.subscribe(name)
    world.advance(START + 3 * DAY)
    store = world.container.usage_store
    store.insert([event("acme", START + DAY, 5), event("acme", START + DAY + timedelta(hours=2), 7),
                  event("acme", START + 2 * DAY, 11),
                  event("globex", START + DAY, 3), event("globex", START + 2 * DAY, 4),
                  event("initech", START + 2 * DAY, 9), event("initech", START + 2 * DAY, 1)])
    sync = world.sync_service()

    report = sync.sync(since=START.date())

    # Two days with usage for each tenant: two calls each, and nothing else was asked of Stripe.
    assert dict(world.counting.requests) == {METER_EVENTS: 5}
    by_tenant = {t.tenant_id: t for t in report.tenants}
    assert {t: (r.status, r.sent, r.calls) for t, r in by_tenant.items()} == {
        "acme": ("sent", 23, 2), "globex": ("sent", 7, 2), "initech": ("sent", 10, 1)}
    assert [world.meter_total(t) for t in ("acme", "globex", "initech")] == [23, 7, 10]
    rows = world.ledger("acme")
    assert [(r.identifier, r.quantity, r.state) for r in rows] == [
        (f"acme:queries:{(START + DAY).date()}:1", 12, "sent"),
        (f"acme:queries:{(START + 2 * DAY).date()}:1", 11, "sent")]

    world.counting.reset()
    again = sync.sync(since=START.date())
    assert world.counting.total() == 0
    assert {t.status for t in again.tenants} == {"unchanged"}
    assert [world.meter_total(t) for t in ("acme", "globex", "initech")] == [23, 7, 10]


def test_late_events_are_sent_as_a_further_delta(world: World) -> None:
    world.subscribe("acme")
    world.advance(START + 4 * DAY)
    store = world.container.usage_store
    store.insert([event("acme", START + DAY, 10, "a1")])
    sync = world.sync_service()
    sync.sync(since=START.date())
    # Late: an event of day 1 arrives two days on, with a duplicate of one already counted.
    store.insert([event("acme", START + DAY + timedelta(hours=3), 4, "a2"),
                  event("acme", START + DAY, 10, "a1")])
    world.counting.reset()

    report = sync.sync(since=START.date())

    assert world.counting.requests[METER_EVENTS] == 1
    assert report.tenants[0].sent == 4
    assert world.meter_total("acme") == 14
    assert [(r.seq, r.quantity) for r in world.ledger("acme")] == [(1, 10), (2, 4)]


def test_a_lowered_total_is_corrected_with_a_negative_event(world: World) -> None:
    world.subscribe("acme")
    world.advance(START + 3 * DAY)
    store = world.container.usage_store
    store.insert([event("acme", START + DAY, 100, "keep"), event("acme", START + DAY, 40, "fraud")])
    sync = world.sync_service()
    sync.sync(since=START.date())
    assert world.meter_total("acme") == 140

    store.delete_events(["fraud"])
    report = sync.sync(since=START.date())

    result = report.tenants[0]
    assert (result.status, result.corrected, result.sent) == ("corrected", 40, 0)
    assert world.meter_total("acme") == 100
    last = world.ledger("acme")[-1]
    assert (last.quantity, last.kind, last.state) == (-40, "correction", "sent")


def test_one_failing_tenant_is_reported_and_the_others_sync(world: World) -> None:
    for name in ("acme", "globex", "initech"):
        world.subscribe(name)
    world.advance(START + 2 * DAY)
    world.container.usage_store.insert(
        [event(t, START + DAY, 5) for t in ("acme", "globex", "initech")])
    world.client.v1.customers.delete(world.tenants["globex"].customer_id)

    report = world.sync_service(concurrency=3).sync(since=START.date())

    by_tenant = {t.tenant_id: t for t in report.tenants}
    assert by_tenant["globex"].status == "failed"
    assert "Stripe refused" in (by_tenant["globex"].reason or "")
    assert by_tenant["acme"].status == by_tenant["initech"].status == "sent"
    assert world.meter_total("acme") == world.meter_total("initech") == 5
    # Stripe recorded nothing for globex: its row is failed and no longer counts.
    assert [r.state for r in world.ledger("globex")] == ["failed"]


def test_rate_limits_are_backed_off_and_the_sync_completes(world: World) -> None:
    names = [f"tenant{i}" for i in range(4)]
    for name in names:
        world.subscribe(name)
    world.advance(START + 2 * DAY)
    world.container.usage_store.insert([event(t, START + DAY, 3) for t in names])
    faults = install_faults(world.sandbox)
    faults.configure(rate_limit=20, rate_limit_burst=1, paths=("/v1/billing/meter_events",))
    slept: list[float] = []
    from meterbill.adapters.stripe_meters import RetryPolicy

    def sleep(seconds: float) -> None:  # real time must pass for the bucket to refill
        slept.append(seconds)
        import time
        time.sleep(min(seconds, 0.2))

    meters = world.meters(RetryPolicy(max_attempts=30, base_seconds=0.05, max_seconds=0.2,
                                      sleep=sleep))
    report = world.sync_service(meters=meters, concurrency=4).sync(since=START.date())

    assert {t.status for t in report.tenants} == {"sent"}
    assert faults.stats.rate_limited > 0 and meters.stats.rate_limited == faults.stats.rate_limited
    assert slept and all(0 < s <= 0.2 for s in slept)
    assert [world.meter_total(t) for t in names] == [3] * 4


def test_unknown_tenant_and_tenants_without_a_subscription(world: World) -> None:
    world.subscribe("acme")
    with world.container.db.session() as session:
        from meterbill.adapters.db.repositories import TenantRepository

        TenantRepository(session).claim_customer("nosub", "n@example.com", None, "cus_nosub")
    sync = world.sync_service()
    with pytest.raises(NotFound):
        sync.sync(tenants=["ghost"])
    report = sync.sync(tenants=["nosub", "acme"])
    assert {t.tenant_id: t.status for t in report.tenants} == {"nosub": "skipped",
                                                               "acme": "unchanged"}
