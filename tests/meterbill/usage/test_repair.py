"""Usage repair against the sandbox: an event Stripe lost is sent again, an event sent twice
(the ledger forgot the first) is cancelled, what is too old for the meter becomes a signed
invoice item; each recorded, and afterwards Stripe's totals equal the ledger's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import delete, select

from meterbill.adapters.db.usage_ledger import UsageLedgerEntry
from meterbill.adapters.db.usage_repairs import UsageRepairRow
from meterbill.adapters.stripe_usage_repair import StripeUsageRepair
from meterbill.bootstrap import Container
from meterbill.services.usage.reconcile import UsageReconciler
from meterbill.services.usage.repair import UsageRepair
from stripe_sandbox import Sandbox

from .sync_helpers import START, World, event, make_world

DAY = timedelta(days=1)


@pytest.fixture
def world(container: Container, sandbox: Sandbox) -> Iterator[World]:
    made = make_world(container, sandbox)
    for name in ("acme", "globex"):
        made.subscribe(name)
    made.advance(START + 5 * DAY)
    container.usage_store.insert([event("acme", START + d * DAY, 10 * (d + 1))
                                  for d in (0, 1, 2, 3)] + [event("globex", START + DAY, 4)])
    made.sync_service().sync(since=START.date())
    yield made


def repairing(world: World, shift: timedelta = timedelta(0)) -> UsageReconciler:
    meters = world.meters()
    repair = StripeUsageRepair(world.client)
    return UsageReconciler(world.container.db, world.container.usage_store, meters,
                           world.container.catalog, clock=world.now,
                           repairer=UsageRepair(world.container.db, meters, repair,
                                                world.container.catalog,
                                                clock=lambda: world.now() + shift))


def lose(world: World, identifier: str) -> None:
    """Stripe no longer counts the event (as if it never arrived)."""
    from stripe_sandbox.resources.meters import _find

    found = _find(world.sandbox, identifier)
    assert found is not None
    found["cancelled"] = True


def repairs(world: World) -> list[tuple[str, str, int, int | None]]:
    with world.container.db.session() as session:
        return [(r.tenant_id, r.action, r.quantity, r.amount) for r in
                session.scalars(select(UsageRepairRow).order_by(UsageRepairRow.id))]


def test_lost_and_doubled_events_are_repaired_and_totals_agree(world: World) -> None:
    acme_day2 = next(r for r in world.ledger("acme") if r.day == (START + 2 * DAY).date())
    lose(world, acme_day2.identifier)  # 30 queries Stripe lost
    # globex: a second event the same day, then the ledger forgets the first row; the next
    # sync sends that quantity again under a new identifier: Stripe counts it twice.
    world.container.usage_store.insert([event("globex", START + DAY + timedelta(hours=3), 6)])
    world.sync_service().sync(since=START.date())
    first = next(r for r in world.ledger("globex") if r.seq == 1)
    with world.container.db.session() as session:
        session.execute(delete(UsageLedgerEntry).where(UsageLedgerEntry.id == first.id))
    world.sync_service().sync(since=START.date())
    assert world.meter_total("acme") == 70 and world.meter_total("globex") == 14

    checked = repairing(world).reconcile(repair=False)
    assert {d.tenant_id: (d.ours, d.stripe, d.ledger) for d in checked.drifts} == {
        "acme": (100, 70, 100), "globex": (10, 14, 10)}

    report = repairing(world).reconcile(repair=True)
    assert report.drifts == []
    assert {t.tenant_id: (t.ours, t.stripe, t.ledger) for t in report.tenants} == {
        "acme": (100, 100, 100), "globex": (10, 10, 10)}
    assert repairs(world) == [("acme", "resent", 30, None), ("globex", "cancelled", -4, None)]
    assert world.meter_total("acme") == 100 and world.meter_total("globex") == 10
    again = repairing(world).reconcile(repair=True)
    assert again.drifts == [] and again.repairs == []  # nothing left to repair


def test_too_old_for_the_meter_is_left_on_the_next_invoice(world: World) -> None:
    acme_day0 = next(r for r in world.ledger("acme") if r.day == START.date())
    lose(world, acme_day0.identifier)  # 10 queries
    late = repairing(world, shift=timedelta(days=40))  # Stripe's meter takes 35 days back
    report = late.reconcile(repair=True)
    assert [(r.tenant_id, r.action, r.quantity) for r in report.repairs] == [
        ("acme", "adjusted", 10)]
    amount = report.repairs[0].amount
    assert amount == 1  # 10 × 0.08 cents (pro), rounded half up
    items = world.client.v1.invoice_items.list(
        params={"customer": world.tenants["acme"].customer_id}).data
    assert [(i.amount, i.description) for i in items if "Usage adjustment" in
            (i.description or "")] == [(1, f"Usage adjustment for {START.date()}: +10 queries")]
    assert repairs(world) == [("acme", "adjusted", 10, 1)]
    assert report.drifts == []  # settled on the invoice, not a drift
    acme = next(t for t in report.tenants if t.tenant_id == "acme")
    assert (acme.ours, acme.stripe, acme.reason) == (100, 90, "+10 settled by an invoice "
                                                     "adjustment")
    again = late.reconcile(repair=True)  # adjusted once, never again
    assert again.repairs == [] and again.drifts == [] and len(repairs(world)) == 1
