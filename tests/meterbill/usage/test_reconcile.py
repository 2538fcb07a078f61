"""Usage reconciliation: the store against Stripe's meter summaries, drifts recorded and alerted."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from meterbill.adapters.db.usage_ledger import UsageDrift
from meterbill.bootstrap import Container
from meterbill.domain.errors import InvalidInput, NotFound
from meterbill.domain.usage import month_bounds
from meterbill.services.usage.reconcile import daily_job
from stripe_sandbox import Sandbox

from .sync_helpers import START, World, event, make_world

DAY = timedelta(days=1)


@pytest.fixture
def world(container: Container, sandbox: Sandbox) -> Iterator[World]:
    made = make_world(container, sandbox)
    for name in ("acme", "globex"):
        made.subscribe(name)
    made.advance(START + 5 * DAY)
    container.usage_store.insert(
        [event("acme", START + d * DAY, 10 * (d + 1)) for d in (0, 1, 2, 3)]
        + [event("globex", START + DAY, 4), event("globex", START + 5 * DAY, 1)])
    yield made


def drifts(world: World) -> list[UsageDrift]:
    with world.container.db.session() as session:
        return list(session.scalars(select(UsageDrift).order_by(UsageDrift.id)))


def test_no_drift_after_a_sync(world: World) -> None:
    world.sync_service().sync(since=START.date())
    report = world.reconciler().reconcile()
    by_tenant = {t.tenant_id: t for t in report.tenants}
    # Up to the start of today: today's usage (globex's 1) is still arriving.
    assert {t: (c.status, c.ours, c.stripe, c.ledger) for t, c in by_tenant.items()} == {
        "acme": ("ok", 100, 100, 100), "globex": ("ok", 4, 4, 4)}
    assert by_tenant["acme"].start == START
    assert report.drifts == [] and drifts(world) == []


def test_unsynced_usage_is_a_drift_recorded_and_alerted(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.sync_service().sync(since=START.date())
    world.container.usage_store.insert([event("acme", START + 2 * DAY, 7, "late-one")])
    with caplog.at_level(logging.ERROR, logger="meterbill.usage"):
        report = world.reconciler().reconcile()
    [drift] = report.drifts
    assert (drift.tenant_id, drift.ours, drift.stripe, drift.ledger, drift.diff) == (
        "acme", 107, 100, 100, 7)
    assert "not synced yet" in (drift.reason or "")
    [row] = drifts(world)
    assert (row.tenant_id, row.ours, row.stripe, row.diff, row.period_label) == (
        "acme", 107, 100, 7, "current")
    assert any("ADMIN ALERT" in r.getMessage() and "acme" in r.getMessage()
               for r in caplog.records)
    # The next sync closes the gap.
    world.sync_service().sync(since=START.date())
    assert world.reconciler().reconcile().drifts == []


def test_usage_stripe_got_from_elsewhere_is_a_drift(world: World) -> None:
    world.sync_service().sync(since=START.date())
    world.client.v1.billing.meter_events.create(params={
        "event_name": "queries", "timestamp": int((START + 2 * DAY).timestamp()),
        "payload": {"stripe_customer_id": world.tenants["globex"].customer_id, "value": "3"}})
    [drift] = world.reconciler().reconcile(tenants=["globex"]).drifts
    assert (drift.ours, drift.stripe, drift.ledger, drift.diff) == (4, 7, 4, -3)
    assert "reported by something else" in (drift.reason or "")


def test_a_calendar_month(world: World) -> None:
    world.sync_service().sync(since=START.date())
    report = world.reconciler().reconcile("2026-01", record=False)
    acme = next(t for t in report.tenants if t.tenant_id == "acme")
    assert acme.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert acme.end == datetime.combine((START + 5 * DAY).date(), datetime.min.time(),
                                        tzinfo=UTC)
    assert (acme.ours, acme.stripe, acme.status) == (100, 100, "ok")
    assert month_bounds(date(2026, 12, 1)) == (datetime(2026, 12, 1, tzinfo=UTC),
                                               datetime(2027, 1, 1, tzinfo=UTC))
    with pytest.raises(InvalidInput):
        world.reconciler().reconcile("2026-13")
    with pytest.raises(NotFound):
        world.reconciler().reconcile(tenants=["ghost"])


def test_the_daily_job_syncs_then_reconciles(world: World) -> None:
    summary = daily_job(world.sync_service(), world.reconciler())
    # Yesterday, today and the open period: everything since START, globex's today included.
    assert summary == {"sync": {"unchanged": 0, "skipped": 0, "sent": 2, "corrected": 0,
                                "failed": 0}, "drifts": 0, "repairs": 0}
    assert world.meter_total("acme") == 100 and world.meter_total("globex") == 5


def test_usage_after_a_cancellation_is_not_a_drift(world: World) -> None:
    """A canceled subscription bills no usage after it ended; the sync sends none of it, so
    the comparison stops there too (it once alerted on every canceled tenant still sending)."""
    world.sync_service().sync(since=START.date())
    world.container.subscriptions.clock = world.now
    world.container.subscriptions.cancel(world.tenants["acme"].subscription_id,
                                         at_period_end=False)
    world.container.usage_store.insert([event("acme", START + 5 * DAY, 50, "after-the-end")])
    world.advance(START + 7 * DAY)
    world.sync_service().sync(since=START.date())
    report = world.reconciler().reconcile()
    acme = next(t for t in report.tenants if t.tenant_id == "acme")
    assert (acme.status, acme.ours, acme.stripe, acme.end) == (
        "ok", 100, 100, START + 5 * DAY)
    assert report.drifts == [] and drifts(world) == []
