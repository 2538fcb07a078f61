"""docs/billing.md's worked example, run: a Pro tenant upgrades to Enterprise after 15 days of a
30-day period, with usage through meterbill's ingestion and sync on a sandbox test clock. Every
line of the change invoice and of the renewal invoice, and the usage view's sentence, must be
what the page states (read from the page, so the page cannot drift)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from meterbill.bootstrap import Container
from meterbill.services.usage.ingest import UsageIngestService
from meterbill.services.usage.view import UsageViewService
from stripe_sandbox import Sandbox
from tests.meterbill.usage.sync_helpers import make_world

from .doc_tables import BILLING_DOC, table_rows

DOC = BILLING_DOC
START = datetime(2026, 4, 1, tzinfo=UTC)  # a 30-day period: April 1 → May 1
CHANGE = START + timedelta(days=15)
RENEWAL = datetime(2026, 5, 1, tzinfo=UTC)
INVOICES = {"change": "subscription_update", "renewal": "subscription_cycle"}


def documented_lines() -> dict[str, list[tuple[str, int, int]]]:
    """The worked example's table: invoice -> sorted (price, quantity, cents)."""
    lines: dict[str, list[tuple[str, int, int]]] = {}
    for invoice, _, price, quantity, amount in table_rows("worked-example"):
        lines.setdefault(invoice.split(",")[0], []).append((price, int(quantity), int(amount)))
    return {k: sorted(v) for k, v in lines.items()}


def documented_sentence() -> str:
    text = " ".join(DOC.read_text().split())
    match = re.search(r'the usage view says: "([^"]+)"', text)
    assert match, "docs/billing.md no longer quotes the usage view's sentence"
    return match.group(1)


def billed_lines(sandbox: Sandbox, container: Container,
                 invoice: Any) -> list[tuple[str, int, int]]:
    names = {}
    for plan in container.catalog:
        names[plan.base_lookup_key] = f"{plan.key} base"
        names[plan.overage_lookup_key] = f"{plan.key} overage"
    out = []
    for line in invoice.lines.data:
        price = sandbox.store.get("price", line.pricing.price_details.price)
        out.append((names[price["lookup_key"]], int(line.quantity or 0), line.amount))
    return sorted(out)


def usage(tenant: str, total: int, first: datetime, days: int, prefix: str,
          per_event: int = 500) -> list[dict[str, Any]]:
    count = total // per_event
    step = timedelta(days=days) / count
    return [{"event_id": f"{prefix}-{i}", "tenant_id": tenant, "metric": "queries",
             "quantity": per_event, "timestamp": (first + step * i).replace(microsecond=0)}
            for i in range(count)]


def ingest(service: UsageIngestService, events: list[dict[str, Any]], until: datetime) -> None:
    """POST the events that happened before `until` (the ingestion refuses future ones)."""
    batch = [{**e, "timestamp": e["timestamp"].isoformat()} for e in events
             if e["timestamp"] < until]
    result = service.ingest(batch)
    assert result.accepted == len(batch) and not result.errors, result


def test_worked_example_pro_to_enterprise_on_day_15(container: Container,
                                                    sandbox: Sandbox) -> None:
    expected = documented_lines()
    assert set(expected) == set(INVOICES)
    world = make_world(container, sandbox, start=START)
    tenant = world.subscribe("acme", "pro")
    sync = world.sync_service()
    container.subscriptions.clock = world.now
    container.subscriptions.usage = sync  # the upgrade flushes through the same sync

    intake = UsageIngestService(container.usage_store, container.tenants.existing,
                                clock=world.now)

    # 80,000 queries over the first 15 days; the daily sync has seen all but the last hours.
    before = usage("acme", 80_000, START + timedelta(minutes=30), 15, "before")
    world.advance(CHANGE - timedelta(hours=6))
    ingest(intake, before, world.now())
    sync.sync(since=START.date())
    assert world.meter_total("acme", START, RENEWAL) < 80_000
    world.advance(CHANGE)
    ingest(intake, before, CHANGE)
    changed = container.subscriptions.change_plan(tenant.subscription_id, "enterprise")
    assert world.meter_total("acme", START, CHANGE) == 80_000  # flushed before the swap

    change_invoice = world.client.v1.invoices.retrieve(changed.proration_invoice)
    assert change_invoice.billing_reason == INVOICES["change"]
    assert billed_lines(sandbox, container, change_invoice) == expected["change"]
    assert change_invoice.status == "paid"

    # 500,000 more over the rest of the period, synced daily.
    world.advance(RENEWAL - timedelta(hours=12))
    ingest(intake, usage("acme", 500_000, CHANGE + timedelta(minutes=1), 14, "after"),
           world.now())
    sync.sync(since=CHANGE.date())
    assert world.meter_total("acme", CHANGE, RENEWAL) == 500_000

    view = UsageViewService(container.db, container.usage_store, container.catalog,
                            clock=world.now).view("acme")
    assert view.sentence == documented_sentence()
    assert [(s.plan, s.used, s.billed) for s in view.segments] == [
        ("pro", 80_000, "at_change"), ("enterprise", 500_000, "period_end")]
    assert view.used == 580_000 and view.overage_amount == 0

    world.advance(RENEWAL + timedelta(hours=2))
    renewal = world.client.v1.invoices.retrieve(
        world.client.v1.subscriptions.retrieve(tenant.subscription_id).latest_invoice)
    assert renewal.billing_reason == INVOICES["renewal"]
    assert billed_lines(sandbox, container, renewal) == expected["renewal"]
    assert renewal.status == "paid"
