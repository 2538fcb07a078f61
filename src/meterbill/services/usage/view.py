"""A tenant's usage for one period, as the tenant sees it: used, included, overage, the
amounts, a projection to the period's end, every day of the period, and one sentence.

Periods:
- `current`: the subscription's current period as last recorded from Stripe (webhooks and
  API calls keep it fresh). A tenant without a subscription period gets the current calendar
  month in UTC instead, and the answer says so.
- `YYYY-MM`: that calendar month in UTC, [1st 00:00, next 1st 00:00). meterbill keeps only the
  current period of a subscription, so earlier billing periods are not known locally; a month
  is the honest unit. Its amounts apply the tenant's plan to that month as if it were a
  billing period, which matches Stripe's invoice only when the billing anchor is the 1st.

A plan change made now inside the period (an upgrade) splits it in two segments, as Stripe bills
it (docs/billing.md, "Plan changes and metered usage"): the usage before the change meets the
old plan's included units and overage price, and was billed on the invoice made at the change;
the usage after it meets the new plan's, in full, on the period's invoice. `segments` lists
them, the overage figures are their sums, and the sentence names both.

Amounts are integer cents from the plan's own maths (`Plan.overage_cost`: the Decimal unit
price × units, rounded half up, as Stripe rounds a line item). The projection is linear (see
`domain.usage.linear_projection`). Nothing here calls Stripe: the view is cheap to ask often.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any, Literal

from ...adapters.db.repositories import SubscriptionRepository, TenantRepository
from ...adapters.db.session import Database
from ...domain.clock import Clock, utcnow
from ...domain.errors import UnknownPlan
from ...domain.money import format_cents
from ...domain.plans import Catalog, Plan
from ...domain.usage import (
    _NOUNS,
    Charges,
    PeriodChoice,
    charges_for,
    daily_series,
    linear_projection,
    month_bounds,
    month_name,
    parse_metric,
    parse_period,
    usage_sentence,
    utc_day,
)
from ...ports.usage_store import UsageStore
from ..billing.tenants import unknown_tenant
from ..views import _View

# A subscription in these states bills nothing more: its tenant has no plan for the view.
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})
PeriodSource = Literal["subscription", "calendar_month"]


@dataclasses.dataclass(frozen=True)
class UsagePeriod(_View):
    label: str  # "current" or "YYYY-MM"
    start: datetime
    end: datetime  # exclusive
    source: PeriodSource
    days: int  # UTC days the period touches: the entries of `daily`
    complete: bool  # the period is over: `used` is final (bar late events)


@dataclasses.dataclass(frozen=True)
class Projection(_View):
    """Usage and amounts at the period's end if usage goes on at the rate seen so far (used ÷
    time elapsed × period length, the elapsed time counting as at least a day); once the
    period is over, the final figures."""

    method: Literal["linear"]
    used: int
    overage_units: int | None
    overage_amount: int | None
    total_amount: int | None


@dataclasses.dataclass(frozen=True)
class DailyUsage(_View):
    date: date
    used: int

    def to_dict(self) -> dict[str, Any]:
        return {"date": self.date.isoformat(), "used": self.used}


@dataclasses.dataclass(frozen=True)
class PlanSegment(_View):
    """The part of the period one plan was in force, and what Stripe bills for its usage."""

    plan: str
    start: datetime
    end: datetime  # exclusive
    used: int
    included: int
    overage_units: int
    overage_amount: int  # cents
    billed: Literal["at_change", "period_end"]


@dataclasses.dataclass(frozen=True)
class TenantUsage(_View):
    tenant_id: str
    metric: str
    period: UsagePeriod
    as_of: datetime
    plan: str | None
    subscription_status: str | None
    currency: str | None
    used: int
    included: int | None
    overage_units: int | None
    overage_unit_amount: str | None  # cents, as Stripe's unit_amount_decimal ("0.08")
    overage_amount: int | None  # cents
    base_amount: int | None  # cents
    total_amount: int | None  # cents: base + overage so far
    projected_total: int | None  # cents at the period's end, linear projection
    projection: Projection
    daily: tuple[DailyUsage, ...]
    sentence: str
    notes: tuple[str, ...] = ()
    segments: tuple[PlanSegment, ...] = ()  # two when the plan changed in the period

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["daily"] = [day.to_dict() for day in self.daily]
        data["segments"] = [segment.to_dict() for segment in self.segments]
        return data


@dataclasses.dataclass(frozen=True)
class _TenantFacts:
    plan_key: str | None
    status: str | None
    period_start: datetime | None
    period_end: datetime | None
    previous_plan: str | None = None
    plan_changed_at: datetime | None = None


class UsageViewService:
    def __init__(self, db: Database, store: UsageStore, catalog: Catalog,
                 clock: Clock = utcnow) -> None:
        self.db = db
        self.store = store
        self.catalog = catalog
        self.clock = clock

    def view(self, tenant_id: str, period: str | None = "current",
             metric: str | None = None) -> TenantUsage:
        """Raises `InvalidUsageQuery` (422) for a bad period or metric, `NotFound` (404)."""
        now = self.clock()
        choice = parse_period(period, now)
        metric_name = parse_metric(metric)
        facts = self._facts(tenant_id)
        notes: list[str] = []
        start, end, source = self._bounds(choice, facts, now, notes)
        plan = self._plan(facts, notes)
        billed = plan is not None and metric_name == plan.meter_event_name

        rows = self.store.daily_totals([tenant_id], metric_name, start, end)
        series = daily_series(((row.day, row.total) for row in rows), start, end)
        used = sum(total for _, total in series)
        projected = linear_projection(used, start, end, now)
        when = _when(choice, start, end)
        cost = charges_for(plan, used) if plan is not None and billed else None
        future = charges_for(plan, projected) if plan is not None and billed else None
        segments = self._segments(tenant_id, metric_name, facts, plan, start, end, now) \
            if plan is not None and billed and source == "subscription" else ()
        sentence = usage_sentence(used, metric_name, when, plan, billed)
        if plan is not None and segments:
            before, after = segments
            cost = _summed(plan, before, after)
            after_projected = linear_projection(after.used, after.start, end, now)
            projected = before.used + after_projected
            future = _summed(plan, before, _segment(plan, after.start, end, after_projected,
                                                     "period_end"))
            sentence = _split_sentence(used, metric_name, when, before, after, self.catalog)
        if plan is not None and not billed:
            notes.append(f"{metric_name} is not billed by the {plan.name} plan (it meters "
                         f"{plan.meter_event_name}); amounts are left out.")
        if facts.status == "trialing":
            notes.append("The subscription is in its trial: amounts show what the plan charges "
                         "for this usage, not what the trial invoice will hold.")
        return TenantUsage(
            tenant_id=tenant_id,
            metric=metric_name,
            period=UsagePeriod(choice.label, start, end, source, len(series), now >= end),
            as_of=now,
            plan=plan.key if plan else None,
            subscription_status=facts.status,
            currency=plan.currency if plan else None,
            used=used,
            included=cost.included if cost else None,
            overage_units=cost.overage_units if cost else None,
            overage_unit_amount=(format(plan.overage_unit_amount.normalize(), "f")
                                 if plan is not None and cost else None),
            overage_amount=cost.overage_amount if cost else None,
            base_amount=cost.base_amount if cost else None,
            total_amount=cost.total_amount if cost else None,
            projected_total=future.total_amount if future else None,
            projection=Projection(
                "linear", projected,
                future.overage_units if future else None,
                future.overage_amount if future else None,
                future.total_amount if future else None),
            daily=tuple(DailyUsage(day, total) for day, total in series),
            sentence=sentence,
            notes=tuple(notes),
            segments=segments,
        )

    # --- helpers ------------------------------------------------------------------------

    def _facts(self, tenant_id: str) -> _TenantFacts:
        with self.db.session() as session:
            tenant = TenantRepository(session).get(tenant_id)
            if tenant is None:
                raise unknown_tenant(tenant_id)
            subscription = None
            if tenant.stripe_subscription_id:
                subscription = SubscriptionRepository(session).get(tenant.stripe_subscription_id)
            status = subscription.status if subscription else None
            plan_key = tenant.current_plan if status not in ENDED_STATUSES else None
            return _TenantFacts(
                plan_key=plan_key,
                status=status,
                period_start=subscription.current_period_start if subscription else None,
                period_end=subscription.current_period_end if subscription else None,
                previous_plan=subscription.previous_plan if subscription else None,
                plan_changed_at=subscription.plan_changed_at if subscription else None,
            )

    def _bounds(self, choice: PeriodChoice, facts: _TenantFacts, now: datetime,
                notes: list[str]) -> tuple[datetime, datetime, PeriodSource]:
        if choice.month is not None:
            start, end = month_bounds(choice.month)
            return start, end, "calendar_month"
        if facts.period_start is not None and facts.period_end is not None \
                and facts.period_end > facts.period_start:
            if now >= facts.period_end:
                notes.append(f"The subscription's recorded period ended at "
                             f"{facts.period_end.isoformat()}; Stripe's update for the next "
                             "period has not arrived yet (webhooks), so this is that period.")
            return facts.period_start, facts.period_end, "subscription"
        start, end = month_bounds(utc_day(now))
        notes.append("The tenant has no subscription period, so this is the current calendar "
                     "month in UTC.")
        return start, end, "calendar_month"

    def _segments(self, tenant_id: str, metric: str, facts: _TenantFacts, plan: Plan,
                  start: datetime, end: datetime, now: datetime) -> tuple[PlanSegment, ...]:
        """Before and after a plan change made inside [start, end), else nothing."""
        at = facts.plan_changed_at
        if at is None or facts.previous_plan is None or not start < at < end:
            return ()
        old = next((p for p in self.catalog if p.key == facts.previous_plan), None)
        if old is None:
            return ()
        before = self.store.total(tenant_id, metric, start, at)
        after = self.store.total(tenant_id, metric, at, min(end, max(now, at)))
        return (_segment(old, start, at, before, "at_change"),
                _segment(plan, at, end, after, "period_end"))

    def _plan(self, facts: _TenantFacts, notes: list[str]) -> Plan | None:
        if facts.plan_key is None:
            notes.append("The tenant has no plan, so its usage is not billed; subscribe it "
                         "with POST /subscriptions (or `meterbill subscriptions create`).")
            return None
        try:
            return self.catalog.get(facts.plan_key)
        except UnknownPlan:
            notes.append(f"The tenant's plan {facts.plan_key!r} is not in the plan catalog any "
                         "more, so amounts cannot be computed.")
            return None


def _when(choice: PeriodChoice, start: datetime, end: datetime) -> str:
    if choice.month is not None:
        return f"in {month_name(choice.month)}"
    days = (end - start).days
    return "this month" if 28 <= days <= 31 else "this billing period"


def _segment(plan: Plan, start: datetime, end: datetime, used: int,
             billed: Literal["at_change", "period_end"]) -> PlanSegment:
    cost = charges_for(plan, used)
    return PlanSegment(plan.key, start, end, used, cost.included, cost.overage_units,
                       cost.overage_amount, billed)


def _summed(plan: Plan, before: PlanSegment, after: PlanSegment) -> Charges:
    """The period's charges across a change: both segments' overage, the current plan's base."""
    return Charges(plan.included_quantity, before.overage_units + after.overage_units,
                   before.overage_amount + after.overage_amount, plan.base_amount)


def _split_sentence(used: int, metric: str, when: str, before: PlanSegment,
                    after: PlanSegment, catalog: Catalog) -> str:
    """"You used 580,000 queries this month: 80,000 on Pro until Apr 16 (within its 100,000
    limit; billed when you changed plan) and 500,000 on Enterprise since (within its 1,000,000
    limit; no overage so far)"."""
    singular, plural = _NOUNS.get(metric, (metric, metric))
    names = {p.key: p for p in catalog}

    def part(segment: PlanSegment, tail: str) -> str:
        plan = names[segment.plan]
        if segment.overage_units == 0:
            within = f"within its {segment.included:,} limit"
        else:
            within = (f"{segment.overage_units:,} over its {segment.included:,} limit = "
                      f"{format_cents(segment.overage_amount, plan.currency)} overage")
        return f"{segment.used:,} on {plan.name} {tail.format(within=within)}"

    day = f"{before.end:%b} {before.end.day}"
    return (f"You used {used:,} {singular if used == 1 else plural} {when}: "
            + part(before, f"until {day} ({{within}}; billed when you changed plan)")
            + " and "
            + part(after, "since ({within}; billed at the period's end)"))
