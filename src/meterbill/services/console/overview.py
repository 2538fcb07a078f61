"""The overview: money this month, tenants by state, and 30 days of payments and webhooks.

MRR is what the plans' base fees bring each month from the subscriptions that are paying
(active and past due; trials pay nothing yet), from the catalog, with no Stripe call. Revenue
and the payment chart come from the inbox's `invoice.paid` / `invoice.payment_failed` events
(on Stripe's `created` time), webhook volume and latency from when each event was received and
handled; so they count what meterbill was told, and say so on the page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ...adapters.db.console import ConsoleQueries
from ...adapters.db.session import Database
from ...domain.clock import Clock, utcnow
from ...domain.plans import Catalog

PAYING = ("active", "past_due")
PAID, FAILED = "invoice.paid", "invoice.payment_failed"
DAYS = 30


@dataclass(frozen=True)
class DayPayments:
    day: date
    succeeded: int
    failed: int


@dataclass(frozen=True)
class DayWebhooks:
    day: date
    received: int
    median_ms: int | None  # received → handled, the events handled that day


@dataclass(frozen=True)
class Overview:
    as_of: datetime
    currency: str
    mrr: int  # cents
    paying: int  # subscriptions counted in the MRR
    revenue_month: int  # cents paid this calendar month (UTC)
    states: dict[str, int]
    payments: list[DayPayments]
    webhooks: list[DayWebhooks]


def _median(values: list[float]) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    value = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return round(value)


def _amount_paid(payload: str) -> int:
    try:
        invoice = json.loads(payload)["data"]["object"]
        return int(invoice.get("amount_paid") or 0)
    except (ValueError, KeyError, TypeError):
        return 0


class OverviewService:
    def __init__(self, db: Database, catalog: Catalog, clock: Clock = utcnow) -> None:
        self.db = db
        self.catalog = catalog
        self.clock = clock

    def overview(self) -> Overview:
        now = self.clock()
        days = [(now - timedelta(days=back)).date() for back in range(DAYS - 1, -1, -1)]
        since = datetime.combine(days[0], datetime.min.time(), tzinfo=now.tzinfo)
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        plans = {plan.key: plan for plan in self.catalog.plans}
        with self.db.session() as session:
            queries = ConsoleQueries(session)
            states = queries.tenants_by_state()
            paying = [s for s in queries.billed_subscriptions(PAYING) if s.plan_type in plans]
            events = queries.inbox_since(since)
            # Only the month's paid invoices are parsed, for what they collected.
            revenue = sum(_amount_paid(p) for p in queries.payloads(PAID, month_start))
        succeeded = {day: 0 for day in days}
        failed = {day: 0 for day in days}
        received = {day: 0 for day in days}
        latency: dict[date, list[float]] = {day: [] for day in days}
        for event in events:
            created = event.created.date()
            if event.type == PAID and created in succeeded:
                succeeded[created] += 1
            elif event.type == FAILED and created in failed:
                failed[created] += 1
            got = event.received_at.date()
            if got in received:
                received[got] += 1
            if event.handled_at is not None and event.handled_at.date() in latency:
                seconds = (event.handled_at - event.received_at).total_seconds()
                latency[event.handled_at.date()].append(max(0.0, seconds * 1000))
        currency = self.catalog.plans[0].currency if self.catalog.plans else "usd"
        return Overview(
            as_of=now, currency=currency,
            mrr=sum(plans[s.plan_type].base_amount for s in paying), paying=len(paying),
            revenue_month=revenue, states=states,
            payments=[DayPayments(d, succeeded[d], failed[d]) for d in days],
            webhooks=[DayWebhooks(d, received[d], _median(latency[d])) for d in days])
