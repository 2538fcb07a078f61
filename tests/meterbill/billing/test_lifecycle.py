"""A subscription's whole life on one test clock, as docs/billing.md tells it ("A subscription's
life, invoice by invoice"): a Starter trial, paid months, an upgrade to Pro mid-period with
usage, a downgrade back to Starter at the period end (a subscription schedule), a cancellation
at the period end, and the end. Usage goes through meterbill's ingestion and the daily sync;
every Stripe event is delivered to meterbill's webhook intake and processor as it happens.

Every invoice of the customer, line by line, must be the page's table (read from the page)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe

from meterbill.adapters.db.models import Subscription
from meterbill.adapters.db.timeline import TimelineRepository
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents, build_webhooks
from meterbill.ports.webhooks import parse_event
from meterbill.services.usage.ingest import UsageIngestService
from meterbill.services.usage.sync import UsageSyncService
from stripe_sandbox import Sandbox
from tests.meterbill.usage.sync_helpers import Subscribed, World, make_world
from tests.meterbill.webhooks.conftest import ManualRunner, event_body, make_options

from .doc_tables import table_rows

TENANT = "acme"
YEAR = 2026
DAY = timedelta(days=1)


def at(text: str) -> datetime:
    """'Mar 1' or 'Mar 1 10:00' in the scenario's year, UTC."""
    fmt = "%b %d %Y %H:%M" if ":" in text else "%b %d %Y"
    parts = text.split()
    return datetime.strptime(" ".join([*parts[:2], str(YEAR), *parts[2:]]), fmt).replace(
        tzinfo=UTC)


START = at("Jan 1")          # the subscription is made, with a 14-day trial
UPGRADE = at("Mar 1")        # to Pro, half-way through Feb 15 – Mar 15
DOWNGRADE = at("Apr 1 10:00")  # to Starter, from the period end (Apr 15)
CANCEL = at("Apr 20 10:00")  # at the period end (May 15)
ENDED = at("May 15")
# Queries used (spread evenly over the days of each span), chosen so most invoices bill overage.
USAGE = [(at("Jan 15"), at("Feb 15"), 15_500),   # Starter: 5,500 over 10,000
         (at("Feb 15"), UPGRADE, 12_600),          # Starter until the upgrade: 2,600 over
         (UPGRADE, at("Mar 15"), 130_000),         # Pro: 30,000 over 100,000
         (at("Mar 15"), at("Apr 15"), 120_000),    # Pro (downgrade pending): 20,000 over
         (at("Apr 15"), ENDED, 11_000)]            # Starter (ending): 1,000 over


@dataclass(frozen=True)
class Line:
    label: str  # "starter base", "pro overage", ...
    start: datetime
    end: datetime
    quantity: int
    cents: int


@dataclass(frozen=True)
class Invoice:
    reason: str
    lines: tuple[Line, ...]
    total: int


def documented_invoices() -> list[Invoice]:
    """The page's table: rows `invoice | reason | line | period | quantity | amount`, each
    invoice closed by a row whose line is `total`."""
    invoices: list[Invoice] = []
    lines: list[Line] = []
    for _number, reason, label, span, quantity, amount in table_rows("lifecycle"):
        if label == "total":
            invoices.append(Invoice(reason, tuple(sorted(lines, key=_order)), int(amount)))
            lines = []
            continue
        first, last = (at(part.strip()) for part in span.split("–"))
        lines.append(Line(label, first, last, int(quantity.replace(",", "")), int(amount)))
    assert not lines, "a row after the last total"
    return invoices


def _order(line: Line) -> tuple[str, datetime, int]:
    return (line.label, line.start, line.cents)


def events_of(start: datetime, end: datetime, total: int,
              prefix: str) -> list[dict[str, Any]]:
    """`total` queries from `start` to `end`: per day, three events at 06:00, 12:00, 18:00."""
    days = (end - start).days
    out = []
    for d in range(days):
        day_total = total // days + (total % days if d == days - 1 else 0)
        parts = [day_total // 3, day_total // 3, day_total - 2 * (day_total // 3)]
        for n, (hour, quantity) in enumerate(zip((6, 12, 18), parts, strict=True)):
            out.append({"event_id": f"{prefix}-{d}-{n}", "tenant_id": TENANT,
                        "metric": "queries", "quantity": quantity,
                        "timestamp": start + d * DAY + timedelta(hours=hour)})
    assert sum(e["quantity"] for e in out) == total
    return out


class Life:
    """The tenant's clock, its usage, and meterbill receiving Stripe's events."""

    def __init__(self, container: Container, sandbox: Sandbox) -> None:
        self.container, self.sandbox = container, sandbox
        self.world: World = make_world(container, sandbox, start=START)
        self.client: stripe.StripeClient = self.world.client
        self.sync: UsageSyncService = self.world.sync_service()
        container.subscriptions.clock = self.world.now
        container.subscriptions.usage = self.sync  # an upgrade flushes through the same sync
        self.intake = UsageIngestService(container.usage_store, container.tenants.existing,
                                         clock=self.world.now)
        runner = ManualRunner()
        self.hooks: WebhookComponents = build_webhooks(container, options=make_options(),
                                                       runner=runner, usage=self.sync)
        runner.components = self.hooks
        self.customer_id = ""
        self.seen: set[str] = set()
        self.pending = sorted((e for i, (s, t, q) in enumerate(USAGE)
                               for e in events_of(s, t, q, f"u{i}")),
                              key=lambda e: e["timestamp"])

    def deliver(self) -> None:
        for event in self.sandbox.store.all("event"):
            obj = event["data"]["object"]
            if event["id"] in self.seen or self.customer_id not in (obj.get("customer"),
                                                                    obj.get("id")):
                continue
            self.seen.add(event["id"])
            receipt = self.hooks.intake.store(parse_event(event_body(event)))
            if receipt.row_id is not None:
                result = self.hooks.processor.process(receipt.row_id)
                assert result.outcome in ("handled", "ignored", "skipped"), result

    def advance(self, to: datetime) -> None:
        self.world.advance(to)
        self.deliver()

    def ingest(self) -> None:
        """The SaaS posts the usage that has happened by now."""
        now = self.world.now()
        batch = [e for e in self.pending if e["timestamp"] <= now]
        self.pending = self.pending[len(batch):]
        if batch:
            result = self.intake.ingest([{**e, "timestamp": e["timestamp"].isoformat()}
                                         for e in batch])
            assert result.accepted == len(batch) and not result.errors, result

    def live_until(self, end: datetime, actions: dict[datetime, Callable[[], None]]) -> None:
        """Day by day: usage posted through the day (19:00), the daily sync at 00:30;
        each action at its moment."""
        moments = set(actions)
        day = START
        while day < end:
            moments |= {day + timedelta(hours=19), day + DAY + timedelta(minutes=30)}
            day += DAY
        for moment in sorted(m for m in moments if m > self.world.now()):
            self.advance(moment)
            self.ingest()
            if moment in actions:
                actions[moment]()
            elif moment.hour == 0:
                self.sync.sync()


@pytest.fixture
def life(container: Container, sandbox: Sandbox) -> Iterator[Life]:
    made = Life(container, sandbox)
    try:
        yield made
    finally:
        made.hooks.close()


def label_of(container: Container, sandbox: Sandbox, line: Any) -> str:
    names = {}
    for plan in container.catalog:
        names[plan.base_lookup_key] = f"{plan.key} base"
        names[plan.overage_lookup_key] = f"{plan.key} overage"
    price = sandbox.store.get("price", line.pricing.price_details.price)
    return names[price["lookup_key"]]


def billed(life: Life) -> list[Invoice]:
    found = life.client.v1.invoices.list(params={"customer": life.customer_id,
                                                 "limit": 100}).data
    out = []
    for invoice in sorted(found, key=lambda i: (i.created, i.id)):
        lines = [Line(label_of(life.container, life.sandbox, line),
                      datetime.fromtimestamp(line.period.start, UTC),
                      datetime.fromtimestamp(line.period.end, UTC),
                      int(line.quantity or 0), line.amount)
                 for line in invoice.lines.data]
        out.append(Invoice(str(invoice.billing_reason), tuple(sorted(lines, key=_order)),
                           invoice.total))
    return out


def test_a_subscriptions_life_invoice_by_invoice(life: Life, container: Container,
                                                 sandbox: Sandbox) -> None:
    expected = documented_invoices()
    client = life.client
    client.v1.customers.create(params={
        "email": "billing@acme.test", "test_clock": life.world.clock_id,
        "metadata": {"tenant_id": TENANT}})  # on the test clock; meterbill finds it
    tenant = container.customers.ensure_customer(TENANT, "billing@acme.test", "Acme Inc.")
    assert tenant.stripe_customer_id
    life.customer_id = tenant.stripe_customer_id
    sub = container.subscriptions.create(TENANT, life.customer_id, "starter", trial_days=14,
                                         payment_method_id="pm_card_visa")
    assert sub.status == "trialing"
    life.world.tenants[TENANT] = Subscribed(TENANT, life.customer_id, sub.id)
    life.deliver()

    def upgrade() -> None:
        changed = container.subscriptions.change_plan(sub.id, "pro")
        assert (changed.effective, changed.to_plan) == ("now", "pro")
        assert changed.proration_invoice is not None

    def downgrade() -> None:
        changed = container.subscriptions.change_plan(sub.id, "starter")
        assert (changed.effective, changed.subscription.pending_plan) == ("period_end",
                                                                          "starter")

    def cancel() -> None:
        view = container.subscriptions.cancel(sub.id, at_period_end=True)
        assert view.cancel_at_period_end and view.status == "active"
        assert container.tenants.get(TENANT).plan == "starter"

    life.live_until(ENDED + 3 * DAY, {UPGRADE: upgrade, DOWNGRADE: downgrade, CANCEL: cancel})

    assert billed(life) == expected

    # Every query billed once: the metered lines tile the paid months, and bill what was used.
    metered = sorted((line for invoice in expected for line in invoice.lines
                      if line.label.endswith("overage") and line.start != START),
                     key=lambda line: line.start)
    assert [(a.end, b.start) for a, b in zip(metered, metered[1:], strict=False)] == [
        (b.start, b.start) for b in metered[1:]]
    assert (metered[0].start, metered[-1].end) == (USAGE[0][0], ENDED)
    assert sum(line.quantity for line in metered) == sum(q for _, _, q in USAGE) == 289_100
    assert life.world.meter_total(TENANT, START, ENDED + 3 * DAY) == 289_100
    # ... and every invoice charged once, for its total.
    invoices = client.v1.invoices.list(params={"customer": life.customer_id, "limit": 100})
    for invoice in invoices.data:
        assert (invoice.status, invoice.amount_paid) == ("paid", max(invoice.total, 0))
    charged = [pi for pi in sandbox.store.all("payment_intent")
               if pi.get("customer") == life.customer_id and pi["status"] == "succeeded"]
    assert sorted(pi["amount"] for pi in charged) == sorted(
        i.total for i in expected if i.total > 0)

    # The end, as meterbill sees it.
    summary = container.tenants.get(TENANT)
    assert (summary.access, summary.status, summary.plan) == ("none", "canceled", "starter")
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    with container.db.session() as session:
        row = session.get(Subscription, sub.id)
        assert row is not None
        assert (row.status, row.ended_at) == ("canceled", ENDED)
        timeline = TimelineRepository(session).for_tenant(TENANT)
    assert summary.dunning_state == "canceled" and summary.rate_limit_multiplier == 0
    assert [(e.from_state, e.to_state, e.step) for e in timeline][-1] == (
        "good_standing", "canceled", "cancellation")
