"""Where usage goes in Stripe: slots, meter event timestamps, identifiers. Pure, no clock.

A **slot** is the part of one UTC day that lies in one billing period: a whole day, or, on the
day a period ends, the part before the boundary and the part after it. Usage is reported per
slot, so that every meter event falls inside the period its usage belongs to (Stripe bills a
meter event on the invoice of the period that contains its timestamp).

The **timestamp** of a slot's meter events keeps clear of a boundary's partial minute: Stripe's
meter event summaries take only minute-aligned windows, and a period boundary is rarely on a
minute (a subscription started at 09:17:23 renews at 09:17:23). Events stamped in
`[ceil_minute(start), floor_minute(end) - 1s]` are found exactly by a summary over
`[ceil_minute(period_start), floor_minute(period_end))`, which no other period's events enter.
Within that range the timestamp is "now" clamped: the latest moment that has already happened,
and never more than 35 days back (Stripe refuses older events) nor in the future.

The **identifier** of the n-th meter event of a tenant, metric and day is
`{tenant}:{metric}:{day}:{n}`, at most Stripe's 100 characters (a long tenant id is replaced by
a hash of it); the idempotency key is the same with `usage:` in front.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .usage import PAST_WINDOW, day_bounds

MAX_IDENTIFIER = 100
# Stripe checks the 35-day window when the request arrives, not when we compute it.
PAST_MARGIN = timedelta(minutes=10)
# How far ahead a timestamp may be (Stripe allows 5 minutes of clock drift).
FUTURE_SLACK = timedelta(minutes=4)
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


@dataclass(frozen=True, order=True)
class Slot:
    """[start, end) within `day`, inside one billing period."""

    day: date
    start: datetime
    end: datetime


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def ceil_minute(moment: datetime) -> datetime:
    floored = floor_minute(moment)
    return floored if floored == moment else floored + MINUTE


def slots_of_day(day: date, boundaries: Iterable[datetime]) -> list[Slot]:
    """The day split at every period boundary strictly inside it, in order."""
    start, end = day_bounds(day)
    cuts = sorted({b.astimezone(UTC) for b in boundaries if start < b < end})
    edges = [start, *cuts, end]
    return [Slot(day, a, b) for a, b in zip(edges, edges[1:], strict=False)]


def slots_between(first: date, last: date, boundaries: Iterable[datetime],
                  until: datetime | None = None) -> list[Slot]:
    """Slots of the days `first`..`last` (inclusive), cut at `until` when given."""
    cuts = list(boundaries)
    if until is not None:
        cuts.append(until)
    found: list[Slot] = []
    day = first
    while day <= last:
        for slot in slots_of_day(day, cuts):
            if until is None or slot.end <= until:
                found.append(slot)
        day += timedelta(days=1)
    return found


def safe_range(slot: Slot) -> tuple[datetime, datetime]:
    """Earliest and latest timestamp for the slot's events, both inclusive (see the module
    docstring); a slot without a whole minute inside falls back to its plain bounds."""
    low, high = ceil_minute(slot.start), floor_minute(slot.end) - SECOND
    if low > high:
        low, high = slot.start, slot.end - SECOND
    return low, high


def event_timestamp(slot: Slot, now: datetime) -> datetime | None:
    """When to stamp a meter event for `slot` at `now`; None when Stripe would refuse every
    moment of the slot (more than 35 days old, or not begun yet)."""
    low, high = safe_range(slot)
    moment = min(max(now.replace(microsecond=0), low), high)
    if moment < now - PAST_WINDOW + PAST_MARGIN or moment > now + FUTURE_SLACK:
        return None
    return moment


def expired(slot: Slot, now: datetime) -> bool:
    """True when the slot is too old for Stripe's 35-day window (not merely in the future)."""
    return safe_range(slot)[1] < now - PAST_WINDOW + PAST_MARGIN


def identifier(tenant_id: str, metric: str, day: date, n: int) -> str:
    """The meter event identifier `{tenant}:{metric}:{day}:{n}` (hashed tenant if too long)."""
    text = f"{tenant_id}:{metric}:{day.isoformat()}:{n}"
    if len(text) <= MAX_IDENTIFIER:
        return text
    digest = hashlib.sha256(tenant_id.encode()).hexdigest()[:32]
    return f"h{digest}:{metric}:{day.isoformat()}:{n}"


def idempotency_key(meter_identifier: str) -> str:
    return f"usage:{meter_identifier}"


def summary_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The minute-aligned window whose Stripe summary holds exactly our events of [start, end)."""
    return ceil_minute(start), floor_minute(end)
