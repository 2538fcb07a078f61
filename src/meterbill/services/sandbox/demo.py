"""A month of billing, simulated in sandbox mode: what `make run` seeds on a new database and
`meterbill demo` runs on demand.

Tenants across the three plans (some on trial, a few on a card the bank declines, one whose
card needs authentication, one billed by invoice) subscribe at the start of the month, on the
test clocks' time a month ago; each simulated day their usage arrives with a daily shape
(weekday peaks, a few tenants over their included amount, some events sent twice, some a day
late), the usage sync reports it, and the clocks move a day, so invoices are made and paid or
declined, dunning escalates, and one subscription, cancelled directly in Stripe, is caught by
its webhook. It ends at the real present, so what a person does next happens "now".
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ...domain.clock import Clock, utcnow
from ...domain.errors import Conflict, InvalidInput, MeterbillError
from ..billing.customers import CustomerService
from ..billing.subscriptions import SubscriptionService
from ..billing.tenants import TenantService
from ..usage.ingest import UsageIngestService
from .clock import SandboxClock

DAY = timedelta(days=1)
MAX_TENANTS = 200
MAX_DAYS = 62
# Queries a day at the start of a weekday, by plan: under the included amount, and over it.
_DAILY = {"starter": (250, 520), "pro": (2_500, 4_200), "enterprise": (24_000, 40_000)}
_PLANS = ("starter", "starter", "pro", "pro", "pro", "enterprise")
_EVENTS_PER_DAY = 12  # usage arrives in batches through the day


@dataclass(frozen=True)
class DemoTenant:
    tenant_id: str
    name: str
    plan: str
    payment_method: str | None  # None: billed by invoice
    trial_days: int
    daily: int  # queries on a weekday
    role: str  # healthy, trial, failing, authentication, invoice, cancelled


def plan_tenants(count: int, seed: int = 7) -> list[DemoTenant]:
    """The cast: the special roles first, then healthy tenants and trials."""
    rng = random.Random(seed)
    roles = ["authentication", "invoice", "failing", "cancelled", "failing", "trial", "failing"]
    tenants = []
    for index in range(count):
        role = roles[index] if index < len(roles) else ("trial" if index % 4 == 0 else
                                                        "healthy")
        plan = _PLANS[index % len(_PLANS)]
        low, high = _DAILY[plan]
        over = index % 5 == 2  # a few tenants use more than their plan includes
        daily = int((high if over else low) * rng.uniform(0.8, 1.2))
        card = {"failing": "pm_card_chargeCustomerFail",
                "authentication": "pm_card_authenticationRequired",
                "invoice": None}.get(role, "pm_card_visa")
        trial = {"trial": 14, "failing": rng.choice((3, 5, 8))}.get(role, 0)
        tenants.append(DemoTenant(f"demo_{index + 1:03d}", f"Demo Company {index + 1}",
                                  plan, card, trial, daily, role))
    return tenants


def day_events(tenant: DemoTenant, day: datetime, rng: random.Random) -> list[dict[str, Any]]:
    """One day's usage events of a tenant: fewer at weekends, a few repeated."""
    weekend = day.weekday() >= 5
    total = int(tenant.daily * (0.35 if weekend else 1.0) * rng.uniform(0.85, 1.15))
    events = []
    for n in range(_EVENTS_PER_DAY):
        quantity = total // _EVENTS_PER_DAY + (1 if n < total % _EVENTS_PER_DAY else 0)
        at = day + timedelta(hours=2 * n, minutes=rng.randrange(60))
        events.append({"event_id": f"{tenant.tenant_id}-{day:%Y%m%d}-{n}",
                       "tenant_id": tenant.tenant_id, "quantity": quantity,
                       "timestamp": at.isoformat()})
    return events


@dataclass
class DemoSummary:
    """The end table: tenants by state, invoices and amounts, usage stored and reported."""

    started: datetime
    ended: datetime
    tenants: int
    states: dict[str, int] = field(default_factory=dict)
    invoices: dict[str, int] = field(default_factory=dict)
    events_sent: int = 0
    duplicates: int = 0
    late: int = 0
    usage_stored: int = 0
    usage_reported: int = 0
    cancelled_in_stripe: str | None = None
    caught: bool = False
    # What was seeded, to check invoices against: (tenant, day of the events, day they
    # arrived) → queries, each event once.
    seeded: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"started": self.started.isoformat(), "ended": self.ended.isoformat(),
                "tenants": self.tenants, "states": self.states, "invoices": self.invoices,
                "events_sent": self.events_sent, "duplicates": self.duplicates,
                "late": self.late, "usage_stored": self.usage_stored,
                "usage_reported": self.usage_reported,
                "cancelled_in_stripe": self.cancelled_in_stripe, "caught": self.caught,
                "seeded": [[t, day, arrived, q] for (t, day, arrived), q
                           in sorted(self.seeded.items())]}


@dataclass
class DemoParts:
    """What the simulation drives: meterbill's own services, and two outside hands."""

    clock: SandboxClock
    customers: CustomerService
    subscriptions: SubscriptionService
    tenants: TenantService
    ingest: Callable[[], UsageIngestService]
    # The usage sync from a day on (the daily job's run; yesterday's late events included).
    sync: Callable[[date], object]
    # Someone cancels a subscription in Stripe's dashboard: not through meterbill.
    cancel_in_stripe: Callable[[str], None]
    # The usage store's and the ledger's totals of these tenants since a moment.
    usage_totals: Callable[[list[str], datetime], tuple[int, int]]
    wall: Clock = utcnow


def run_demo(parts: DemoParts, *, tenants: int = 25, days: int | None = None, seed: int = 7,
             progress: Callable[[str], None] = lambda line: None) -> DemoSummary:
    """Seed and simulate; refuses a sandbox that has meterbill clocks already."""
    if not 1 <= tenants <= MAX_TENANTS:
        raise InvalidInput(f"tenants must be between 1 and {MAX_TENANTS}, got {tenants}.",
                           field="tenants")
    now = parts.wall().replace(microsecond=0)
    # Renewals fall at least three hours back, so they are finalized and charged by the end.
    start = _month_before(now - timedelta(hours=3)) if days is None else now - days * DAY
    if not DAY <= now - start <= MAX_DAYS * DAY:
        raise InvalidInput(f"days must be between 1 and {MAX_DAYS}, got {days}.", field="days")
    if parts.clock.ours():
        raise Conflict("This sandbox has tenants on test clocks already; the demo starts a month "
                       "back and needs a new database. Fix: run `meterbill demo --fresh` (it "
                       "starts over) or stop the server and remove var/.", code="demo_not_fresh")
    parts.clock.start_at(start.replace(hour=0, minute=0, second=0))
    start = parts.clock.now()
    cast = plan_tenants(tenants, seed)
    rng = random.Random(seed)
    summary = DemoSummary(started=start, ended=start, tenants=len(cast))
    marks = parts.clock.marks()
    progress(f"demo: {len(cast)} tenants subscribe on {start:%Y-%m-%d} (the test clocks' time)")
    subscribed: dict[str, str] = {}
    for tenant in cast:
        view = parts.customers.ensure_customer(tenant.tenant_id,
                                               f"billing@{tenant.tenant_id}.test", tenant.name)
        try:
            sub = parts.subscriptions.create(
                tenant_id=tenant.tenant_id, customer_id=str(view.stripe_customer_id),
                plan_type=tenant.plan, trial_days=tenant.trial_days,
                payment_method_id=tenant.payment_method,
                days_until_due=14 if tenant.payment_method is None else None)
            subscribed[tenant.tenant_id] = sub.id
        except MeterbillError as error:  # shown in the table as a tenant without a plan
            progress(f"demo: {tenant.tenant_id} not subscribed: {error}")
    # The month ends at the real present: what a person does next happens "now".
    end = now
    total_days = max(1, (end - start + DAY - timedelta(seconds=1)) // DAY)
    late: list[dict[str, Any]] = []
    day = start
    index = 0
    cancel_on = total_days // 2
    while day < end:
        index += 1
        batch = list(late)
        late = []
        # A tenant whose access is off cannot use the SaaS, so it sends no usage.
        allowed = {v.tenant_id for v in parts.tenants.list() if v.api_access_enabled}
        for tenant in cast:
            if tenant.tenant_id not in subscribed or tenant.tenant_id not in allowed:
                continue
            events = day_events(tenant, day, rng)
            for event in events:
                if rng.random() < 0.03:  # sent twice
                    batch.append(event)
                    summary.duplicates += 1
                if rng.random() < 0.04 and event["timestamp"] < end.isoformat():
                    late.append(event)  # arrives tomorrow
                    summary.late += 1
                else:
                    batch.append(event)
        batch = [e for e in batch if e["timestamp"] < now.isoformat()]
        seen = set()
        for event in batch:
            if event["event_id"] not in seen:
                seen.add(event["event_id"])
                summary.seeded[(event["tenant_id"], event["timestamp"][:10],
                                day.date().isoformat())] += event["quantity"]
        service = parts.ingest()
        for chunk in range(0, len(batch), 10_000):
            result = service.ingest(batch[chunk:chunk + 10_000])
            summary.events_sent += result.accepted + result.duplicates
        if index == cancel_on:
            victim = next((t for t in cast if t.role == "cancelled"
                           and t.tenant_id in subscribed), None)
            if victim is not None:
                parts.cancel_in_stripe(subscribed[victim.tenant_id])
                summary.cancelled_in_stripe = victim.tenant_id
                progress(f"demo: day {index}: {victim.tenant_id}'s subscription is cancelled "
                         "directly in Stripe (not through meterbill)")
        step = min(DAY, end - day)
        report = parts.clock.advance(days=step / DAY)
        parts.sync((day - DAY).date())
        day += step
        invoices = report.invoices
        progress(f"demo: day {index}/{total_days} ({day:%Y-%m-%d}): {len(batch)} events; "
                 f"invoices made {invoices.get('created', 0)}, paid {invoices.get('paid', 0)}, "
                 f"failed {invoices.get('payment_failed', 0)}; "
                 f"dunning steps {len(report.dunning)}")
    summary.ended = parts.clock.now()
    whole = parts.clock.report_since(marks)
    summary.invoices = whole.invoices
    states: Counter[str] = Counter()
    for view in parts.tenants.list():
        if view.tenant_id.startswith("demo_"):
            states[view.billing_status] += 1
            if view.tenant_id == summary.cancelled_in_stripe:
                summary.caught = view.billing_status == "canceled"
    summary.states = dict(states)
    summary.usage_stored, summary.usage_reported = parts.usage_totals(
        [t.tenant_id for t in cast], start)
    return summary


def _month_before(moment: datetime) -> datetime:
    """The same day and time a calendar month earlier (the 28th at most, as billing anchors)."""
    year, month = (moment.year, moment.month - 1) if moment.month > 1 else (moment.year - 1, 12)
    return moment.replace(year=year, month=month, day=min(moment.day, 28)).astimezone(UTC)
