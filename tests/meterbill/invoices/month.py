"""A month of several tenants on one sandbox test clock, with meterbill receiving every Stripe
event as it happens (webhook intake and processor), usage through ingestion and the daily sync,
and invoice verification on: the set-up of the verification tests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe

from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents, build_webhooks
from meterbill.ports.webhooks import parse_event
from meterbill.services.usage.ingest import UsageIngestService
from meterbill.services.usage.sync import UsageSyncService
from stripe_sandbox import Sandbox
from tests.meterbill.usage.sync_helpers import Subscribed, World, make_world
from tests.meterbill.webhooks.conftest import ManualRunner, event_body, make_options

START = datetime(2026, 1, 1, tzinfo=UTC)
RENEWAL = datetime(2026, 2, 1, tzinfo=UTC)
DAY = timedelta(days=1)


class SkippingFlush:
    """The usage sync's period-end flush, switched off for some customers (a fault)."""

    def __init__(self, sync: UsageSyncService) -> None:
        self.sync = sync
        self.skip: set[str] = set()

    def flush(self, customer_id: str, period_end: datetime) -> None:
        if customer_id not in self.skip:
            self.sync.flush(customer_id, period_end)


@dataclass
class Month:
    container: Container
    sandbox: Sandbox
    world: World
    sync: UsageSyncService
    flush: SkippingFlush
    hooks: WebhookComponents
    intake: UsageIngestService
    seen: set[str] = field(default_factory=set)
    pending: list[dict[str, Any]] = field(default_factory=list)

    @property
    def client(self) -> stripe.StripeClient:
        return self.world.client

    def subscribe(self, tenant_id: str, plan: str) -> Subscribed:
        made = self.world.subscribe(tenant_id, plan)
        self.deliver()
        return made

    def deliver(self) -> None:
        """Every Stripe event meterbill has not had yet, stored and handled in order."""
        customers = {t.customer_id for t in self.world.tenants.values()}
        for event in self.sandbox.store.all("event"):
            obj = event["data"]["object"]
            if event["id"] in self.seen or not ({obj.get("customer"), obj.get("id")}
                                                & customers):
                continue
            self.seen.add(event["id"])
            receipt = self.hooks.intake.store(parse_event(event_body(event)))
            if receipt.row_id is not None:
                result = self.hooks.processor.process(receipt.row_id)
                assert result.outcome in ("handled", "ignored", "skipped"), result

    def advance(self, to: datetime) -> None:
        self.world.advance(to)
        self.deliver()

    def usage(self, tenant_id: str, total: int, first: datetime, last: datetime,
              per_event: int = 500) -> None:
        """`total` queries spread evenly over [first, last), posted once they happened."""
        count = total // per_event
        step = (last - first) / count
        self.pending += [{"event_id": f"{tenant_id}-{first:%m%d%H}-{i}", "tenant_id": tenant_id,
                          "metric": "queries", "quantity": per_event,
                          "timestamp": (first + step * i).replace(microsecond=0)}
                         for i in range(count)]

    def ingest(self) -> None:
        now = self.world.now()
        due = [e for e in self.pending if e["timestamp"] <= now]
        self.pending = [e for e in self.pending if e["timestamp"] > now]
        if due:
            result = self.intake.ingest([{**e, "timestamp": e["timestamp"].isoformat()}
                                         for e in due])
            assert result.accepted == len(due) and not result.errors, result

    def live_until(self, end: datetime) -> None:
        """Day by day: usage posted through the day, the daily sync after midnight."""
        day = self.world.now().replace(hour=0, minute=0, second=0)
        moments = []
        while day < end:
            moments += [day + timedelta(hours=19), day + DAY + timedelta(minutes=30)]
            day += DAY
        for moment in sorted(m for m in moments if self.world.now() < m <= end):
            self.advance(moment)
            self.ingest()
            if moment.hour == 0:
                self.sync.sync()

    def invoice(self, tenant_id: str) -> Any:
        """The tenant's renewal invoice (the newest)."""
        sub = self.client.v1.subscriptions.retrieve(self.world.tenants[tenant_id].subscription_id)
        return self.client.v1.invoices.retrieve(str(sub.latest_invoice))

    def charged(self, tenant_id: str) -> list[int]:
        """Amounts of the tenant's succeeded payments, oldest first."""
        customer = self.world.tenants[tenant_id].customer_id
        return [pi["amount"] for pi in sorted(self.sandbox.store.all("payment_intent"),
                                              key=lambda p: (p["created"], p["id"]))
                if pi.get("customer") == customer and pi["status"] == "succeeded"]

    def close(self) -> None:
        self.hooks.close()


def make_month(container: Container, sandbox: Sandbox) -> Month:
    world = make_world(container, sandbox, start=START)
    sync = world.sync_service()
    container.subscriptions.clock = world.now
    container.subscriptions.usage = sync
    flush = SkippingFlush(sync)
    runner = ManualRunner()
    hooks = build_webhooks(container, options=make_options(), runner=runner, usage=flush)
    runner.components = hooks
    intake = UsageIngestService(container.usage_store, container.tenants.existing,
                                clock=world.now)
    return Month(container, sandbox, world, sync, flush, hooks, intake)


def lookup(client: stripe.StripeClient, keys: Iterable[str]) -> dict[str, Any]:
    found = client.v1.prices.list(params={"lookup_keys": list(keys), "expand": ["data.tiers"]})
    return {str(p.lookup_key): p for p in found.data}


def hold_one(month: Month) -> tuple[str, str]:
    """t-ok verified, t-double held (5,000 queries sent to Stripe behind meterbill's back)."""
    for tenant in ("t-ok", "t-double"):
        month.subscribe(tenant, "pro")
        month.usage(tenant, 110_000, START + timedelta(hours=1), RENEWAL - timedelta(days=1))
    month.live_until(RENEWAL - timedelta(days=3))
    month.client.v1.billing.meter_events.create(params={
        "event_name": "queries", "timestamp": int((RENEWAL - timedelta(days=5)).timestamp()),
        "payload": {"stripe_customer_id": month.world.tenants["t-double"].customer_id,
                    "value": "5000"}})
    month.live_until(RENEWAL + timedelta(minutes=30))
    return month.invoice("t-ok").id, month.invoice("t-double").id
