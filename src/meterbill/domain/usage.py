"""Usage events: what one is, how a batch of raw input becomes events, and UTC-day buckets.

Pure: no I/O and no clock. Callers pass `now`, the reference for the acceptance window, which
matches Stripe's meter event window (at most 35 days in the past, 5 minutes in the future) so
that every stored event can still be reported. Timestamps are truncated to whole seconds: that
is the precision of Stripe's meter events and of ClickHouse's `DateTime`, so both stores agree
on every range query.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, NamedTuple, TypeGuard

from .errors import InvalidInput
from .money import format_cents
from .plans import Plan

Metric = Literal["queries", "tokens"]
METRICS: tuple[Metric, ...] = ("queries", "tokens")
DEFAULT_METRIC: Metric = "queries"

MAX_BATCH = 10_000
PAST_WINDOW = timedelta(days=35)
FUTURE_WINDOW = timedelta(minutes=5)
MAX_ID_LENGTH = 255
# Far above any real per-event count and far below 2**63, so sums never overflow a BIGINT.
MAX_QUANTITY = 1_000_000_000_000
# Unix seconds beyond this (year 5138) are almost surely milliseconds sent by mistake.
_MAX_UNIX_SECONDS = 100_000_000_000

TIMESTAMP_FIELD = "timestamp"
# `occurred_at` is accepted as another name for `timestamp` (it is the stored column's name).
FIELDS = ("event_id", "tenant_id", "metric", "quantity", TIMESTAMP_FIELD, "occurred_at")


@dataclass(frozen=True, slots=True)
class UsageEvent:
    event_id: str  # unique across all events: the dedupe key
    tenant_id: str
    metric: Metric
    quantity: int
    occurred_at: datetime  # tz-aware UTC, whole seconds
    ingested_at: datetime  # tz-aware UTC, whole seconds

    @property
    def day(self) -> date:
        return utc_day(self.occurred_at)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one event: `index` in the batch (None for the batch itself)."""

    index: int | None
    field: str | None
    message: str
    line: int | None = None  # set when the event came from a file

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "field": self.field, "message": self.message}
        if self.line is not None:
            body["line"] = self.line
        return body


@dataclass
class ParsedBatch:
    """The good events (with their batch indexes) and an error for each bad field."""

    events: list[UsageEvent] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EventColumns:
    """Events as columns, row i of each list being event i: the bulk form stores load without
    a Python object per event. `occurred_s` and `ingested_s` are Unix seconds (UTC)."""

    event_id: list[str]
    tenant_id: list[str]
    metric: list[str]
    quantity: list[int]
    occurred_s: list[int]
    ingested_s: list[int]

    def __len__(self) -> int:
        return len(self.event_id)

    @classmethod
    def empty(cls) -> EventColumns:
        return cls([], [], [], [], [], [])

    @classmethod
    def of(cls, events: Iterable[UsageEvent]) -> EventColumns:
        columns = cls.empty()
        for event in events:
            columns.append(event.event_id, event.tenant_id, event.metric, event.quantity,
                           int(event.occurred_at.timestamp()), int(event.ingested_at.timestamp()))
        return columns

    def append(self, event_id: str, tenant_id: str, metric: str, quantity: int,
               occurred_s: int, ingested_s: int) -> None:
        self.event_id.append(event_id)
        self.tenant_id.append(tenant_id)
        self.metric.append(metric)
        self.quantity.append(quantity)
        self.occurred_s.append(occurred_s)
        self.ingested_s.append(ingested_s)

    def select(self, keep: list[bool]) -> EventColumns:
        """The rows where `keep` is true, in order."""
        return EventColumns(*([value for value, wanted in zip(column, keep, strict=True)
                               if wanted] for column in self._columns()))

    def _columns(self) -> tuple[list[Any], ...]:
        return (self.event_id, self.tenant_id, self.metric, self.quantity, self.occurred_s,
                self.ingested_s)


class DailyTotal(NamedTuple):
    tenant_id: str
    metric: str
    day: date
    total: int


class BatchTooLarge(InvalidInput):
    status = 413  # the API's answer too: one rule for the batch size
    default_code = "batch_too_large"

    def __init__(self, size: int, limit: int = MAX_BATCH) -> None:
        super().__init__(
            f"A batch holds at most {limit:,} events; this one has {size:,}. "
            "Split it into smaller batches and send each one.",
            field="events",
            details={"limit": limit, "size": size},
        )


# --- time -------------------------------------------------------------------------------


def require_aware(value: datetime, name: str = "datetime") -> datetime:
    """`value` in UTC; a naive datetime is refused because its zone would be a guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(UTC)


def whole_seconds(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def utc_day(moment: datetime) -> date:
    """The UTC calendar day of an aware datetime: the bucket usage is reported under."""
    return require_aware(moment).date()


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a UTC day."""
    start = day_start(day)
    return start, start + timedelta(days=1)


def days_between(start: datetime, end: datetime) -> list[date]:
    """The UTC days that the half-open range [start, end) touches, oldest first."""
    start, end = require_aware(start, "start"), require_aware(end, "end")
    if end <= start:
        return []
    last = (end - timedelta(microseconds=1)).date()
    return [start.date() + timedelta(days=n) for n in range((last - start.date()).days + 1)]


def accepted_window(now: datetime) -> tuple[datetime, datetime]:
    """Earliest and latest `occurred_at` accepted at `now`, both inclusive."""
    now = whole_seconds(require_aware(now, "now"))
    return now - PAST_WINDOW, now + FUTURE_WINDOW


def window_error(occurred_at: datetime, now: datetime) -> str | None:
    """Why `occurred_at` falls outside the window Stripe accepts at `now`, or None if inside."""
    earliest, latest = accepted_window(now)
    if occurred_at < earliest:
        return (
            f"{occurred_at.isoformat()} is more than 35 days before now "
            f"({earliest.isoformat()} is the earliest accepted): Stripe meters take events up "
            "to 35 days old, so this usage can no longer be billed."
        )
    if occurred_at > latest:
        return (
            f"{occurred_at.isoformat()} is more than 5 minutes after now "
            f"({latest.isoformat()} is the latest accepted); check the sender's clock and "
            "time zone."
        )
    return None


def parse_timestamp(value: object) -> datetime:
    """ISO 8601 with a UTC offset, or Unix seconds (number or digit string) → aware UTC.

    Raises ValueError with a message that says how to fix the value.
    """
    if isinstance(value, bool):
        raise ValueError(f"must be ISO 8601 or Unix seconds, not a boolean ({value})")
    if isinstance(value, int | float):
        return _from_unix(value)
    if not isinstance(value, str):
        raise ValueError(
            f"must be an ISO 8601 string or Unix seconds (got {type(value).__name__})"
        )
    text = value.strip()
    if not text:
        raise ValueError("is empty; send ISO 8601 (2026-05-01T12:00:00Z) or Unix seconds")
    if _is_number(text):
        return _from_unix(float(text) if "." in text else int(text))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not ISO 8601 or Unix seconds; send e.g. 2026-05-01T12:00:00Z "
            "or 1777636800"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(
            f"{text!r} has no UTC offset, so its time zone would be a guess; add 'Z' for UTC "
            "or an offset such as '+02:00'"
        )
    return whole_seconds(parsed.astimezone(UTC))


def _is_number(text: str) -> bool:
    body = text[1:] if text[:1] in "+-" else text
    whole, _, fraction = body.partition(".")
    return whole.isdigit() and (fraction == "" or fraction.isdigit())


def _from_unix(seconds: float) -> datetime:
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise ValueError(f"{seconds} is not a time; send Unix seconds or ISO 8601")
    if abs(seconds) >= _MAX_UNIX_SECONDS:
        raise ValueError(
            f"{seconds} is too large for Unix seconds; it looks like milliseconds, so divide "
            "by 1000"
        )
    return datetime.fromtimestamp(math.floor(seconds), tz=UTC)


# --- parsing ----------------------------------------------------------------------------


def parse_event(
    raw: object, index: int, *, now: datetime, ingested_at: datetime | None = None
) -> UsageEvent | list[FieldError]:
    """One raw event (a mapping, e.g. decoded JSON or a CSV row) → an event, or its errors.

    Every bad field is reported, not only the first, so a sender can fix an event at once.
    Empty strings count as absent (CSV cells), so optional fields take their defaults.
    """
    if not isinstance(raw, Mapping):
        return [FieldError(index, None, f"Each event must be an object with fields "
                           f"{', '.join(FIELDS[:5])}; got {type(raw).__name__}.")]
    errors: list[FieldError] = []

    def fail(name: str, message: str) -> None:
        errors.append(FieldError(index, name, message))

    for key in raw:
        if key not in FIELDS:
            fail(str(key), f"Unknown field {key!r}. Allowed fields: {', '.join(FIELDS[:5])} "
                 "(check the spelling; an unknown field is never ignored, as a misspelt "
                 "quantity would bill the default of 1).")
    values = {key: raw[key] for key in FIELDS if not _absent(raw.get(key))}

    event_id = _identifier(values.get("event_id"), "event_id", fail)
    tenant_id = _identifier(values.get("tenant_id"), "tenant_id", fail)

    metric_raw = values.get("metric", DEFAULT_METRIC)
    metric: Metric = DEFAULT_METRIC
    if metric_raw in METRICS:
        metric = metric_raw
    else:
        fail("metric", f"Unknown metric {metric_raw!r}. Valid metrics: {', '.join(METRICS)} "
             f"(leave it out for {DEFAULT_METRIC}).")

    quantity = _quantity(values.get("quantity", 1), fail)

    occurred_at = None
    ts_field = TIMESTAMP_FIELD
    if TIMESTAMP_FIELD in values and "occurred_at" in values:
        fail("occurred_at", "Send either timestamp or occurred_at, not both.")
    elif TIMESTAMP_FIELD not in values and "occurred_at" not in values:
        fail(TIMESTAMP_FIELD, "timestamp is required: when the usage happened, as ISO 8601 "
             "with an offset (2026-05-01T12:00:00Z) or Unix seconds.")
    else:
        ts_field = TIMESTAMP_FIELD if TIMESTAMP_FIELD in values else "occurred_at"
        try:
            occurred_at = parse_timestamp(values[ts_field])
        except ValueError as exc:
            fail(ts_field, f"{ts_field} {exc}.")
        else:
            problem = window_error(occurred_at, now)
            if problem:
                fail(ts_field, f"{ts_field} {problem}")

    if errors or event_id is None or tenant_id is None or quantity is None or occurred_at is None:
        return errors
    stamp = whole_seconds(require_aware(ingested_at or now, "ingested_at"))
    return UsageEvent(event_id, tenant_id, metric, quantity, occurred_at, stamp)


def parse_batch(
    raw_events: object,
    *,
    now: datetime,
    ingested_at: datetime | None = None,
    first_index: int = 0,
    limit: int = MAX_BATCH,
) -> ParsedBatch:
    """Parse a batch, keeping the good events and an error per bad field, by index.

    Raises `BatchTooLarge` above `limit` events and `InvalidInput` if the batch is not a list.
    """
    items = batch_items(raw_events, limit)
    batch = ParsedBatch()
    for offset, raw in enumerate(items):
        index = first_index + offset
        parsed = parse_event(raw, index, now=now, ingested_at=ingested_at)
        if isinstance(parsed, UsageEvent):
            batch.events.append(parsed)
            batch.indexes.append(index)
        else:
            batch.errors.extend(parsed)
    return batch


_Fail = Callable[[str, str], None]


def batch_items(raw_events: object, limit: int = MAX_BATCH) -> list[object]:
    """The events of a batch as a list; raises if it is not a list or holds too many."""
    if isinstance(raw_events, str | bytes | Mapping) or not isinstance(raw_events, Iterable):
        raise InvalidInput("events must be a list of event objects.", field="events")
    items = list(raw_events)
    if len(items) > limit:
        raise BatchTooLarge(len(items), limit)
    return items


def _absent(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _identifier(value: object, name: str, fail: _Fail) -> str | None:
    if value is None:
        fail(name, f"{name} is required (a non-empty string).")
        return None
    if not isinstance(value, str):
        fail(name, f"{name} must be a string (got {type(value).__name__} {value!r}); send it "
             "in quotes.")
        return None
    if len(value) > MAX_ID_LENGTH:
        fail(name, f"{name} is {len(value)} characters long; the limit is {MAX_ID_LENGTH}.")
        return None
    if not _is_text(value):
        fail(name, f"{name} holds a lone UTF-16 surrogate (a broken \\uD800-\\uDFFF escape), "
             "which is not text; send it as valid UTF-8.")
        return None
    return value


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _quantity(value: object, fail: _Fail) -> int | None:
    number: int | None = None
    if _is_int(value):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _is_number(value.strip()) and "." not in value:
        number = int(value.strip())
    if number is None:
        fail("quantity", f"quantity must be a whole number greater than 0 (got {value!r}).")
        return None
    if number <= 0:
        fail("quantity", f"quantity must be greater than 0 (got {number}); leave it out for 1. "
             "To take usage back, delete the original events instead.")
        return None
    if number > MAX_QUANTITY:
        fail("quantity", f"quantity {number} is above the limit of {MAX_QUANTITY:,} per event; "
             "split it into several events.")
        return None
    return number


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# --- buckets ----------------------------------------------------------------------------


def first_of_each(events: Iterable[UsageEvent]) -> Iterator[UsageEvent]:
    """Events with each `event_id` kept once, the first seen winning (as the stores do)."""
    seen: set[str] = set()
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            yield event


def daily_buckets(
    events: Iterable[UsageEvent], start: datetime | None = None, end: datetime | None = None
) -> list[DailyTotal]:
    """Deduplicated totals per (tenant, metric, UTC day), sorted; optionally only [start, end).

    The in-memory twin of `UsageStore.daily_totals`, for small sets and for checking stores.
    """
    low = require_aware(start, "start") if start else None
    high = require_aware(end, "end") if end else None
    sums: dict[tuple[str, str, date], int] = {}
    for event in first_of_each(events):
        if (low and event.occurred_at < low) or (high and event.occurred_at >= high):
            continue
        key = (event.tenant_id, event.metric, event.day)
        sums[key] = sums.get(key, 0) + event.quantity
    return [DailyTotal(t, m, d, total) for (t, m, d), total in sorted(sums.items())]


# --- periods and the tenant's usage view ----------------------------------------------------

_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December")
_NOUNS = {"queries": ("query", "queries"), "tokens": ("token", "tokens")}
# A projection divides by the time elapsed; in a period's first hours that would turn a burst
# into an absurd forecast, so the elapsed time counts as at least one day.
MIN_PROJECTION_BASIS = timedelta(days=1)


class InvalidUsageQuery(InvalidInput):
    """A usage view asked for something that cannot be answered (bad period or metric)."""

    status = 422
    default_code = "invalid_query"


@dataclass(frozen=True)
class PeriodChoice:
    """`current` (the subscription's period) or one calendar month (`month` = its 1st day)."""

    kind: Literal["current", "month"]
    month: date | None = None

    @property
    def label(self) -> str:
        return "current" if self.month is None else f"{self.month:%Y-%m}"


# How far back a sync may start: a year and a day covers every billing period and keeps one
# run's work bounded (a sync from year 1 walked 740,000 days; year 9999 overflowed).
MAX_SYNC_SPAN = timedelta(days=366)


def check_sync_day(day: date | None, field: str, today: date) -> None:
    """A day a usage sync may start from or cover: not in the future, at most a year back."""
    if day is None:
        return
    if day > today:
        raise InvalidInput(f"{field} {day.isoformat()} is in the future (today is "
                           f"{today.isoformat()} UTC).", field=field)
    if day < today - MAX_SYNC_SPAN:
        raise InvalidInput(f"{field} {day.isoformat()} is more than {MAX_SYNC_SPAN.days} days "
                           "ago; sync at most a year at a time.", field=field)


def parse_period(text: str | None, now: datetime) -> PeriodChoice:
    """`current` (also blank) or `YYYY-MM`; a month that has not begun is refused."""
    value = (text or "current").strip().lower()
    if value == "current":
        return PeriodChoice("current")
    year, dash, month = value.partition("-")
    if not (dash and len(year) == 4 and year.isdigit() and len(month) == 2 and month.isdigit()
            and 1 <= int(month) <= 12 and int(year) >= 1970):
        raise InvalidUsageQuery(
            f"period {text!r} is not understood; send current (the subscription's current "
            "period) or a calendar month as YYYY-MM, e.g. 2026-05.",
            field="period", code="invalid_period")
    first = date(int(year), int(month), 1)
    if day_start(first) > require_aware(now, "now"):
        raise InvalidUsageQuery(
            f"period {value} has not started yet (today is {utc_day(now):%Y-%m-%d}); ask for "
            "current or a month up to this one.", field="period", code="invalid_period")
    return PeriodChoice("month", first)


def parse_metric(text: str | None) -> Metric:
    value = (text or DEFAULT_METRIC).strip()
    for metric in METRICS:
        if value == metric:
            return metric
    raise InvalidUsageQuery(f"Unknown metric {value!r}. Valid metrics: {', '.join(METRICS)}.",
                            field="metric", code="invalid_metric")


def month_bounds(first: date) -> tuple[datetime, datetime]:
    """[1st 00:00 UTC, 1st of the next month 00:00 UTC) of the month holding `first`."""
    start = day_start(first.replace(day=1))
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return start, day_start(following)


def month_name(first: date) -> str:
    return f"{_MONTH_NAMES[first.month - 1]} {first.year}"


def daily_series(
    totals: Iterable[tuple[date, int]], start: datetime, end: datetime
) -> list[tuple[date, int]]:
    """Every UTC day that [start, end) touches, oldest first, with 0 where `totals` has none."""
    by_day: dict[date, int] = {}
    for day, total in totals:
        by_day[day] = by_day.get(day, 0) + total
    return [(day, by_day.get(day, 0)) for day in days_between(start, end)]


def linear_projection(used: int, start: datetime, end: datetime, now: datetime) -> int:
    """Usage at `end` if it goes on at the rate seen since `start` (rounded half up).

    Once the period is over, or before it begins, the answer is `used` itself. The elapsed
    time counts as at least MIN_PROJECTION_BASIS (or the whole period, if shorter).
    """
    start, end, now = require_aware(start), require_aware(end), require_aware(now)
    if now >= end or now <= start or used == 0:
        return used
    length = int((end - start).total_seconds())
    basis = max(int((now - start).total_seconds()),
                min(int(MIN_PROJECTION_BASIS.total_seconds()), length))
    return (2 * used * length + basis) // (2 * basis)


@dataclass(frozen=True)
class Charges:
    """What a plan charges for `used` units in one period, in integer cents."""

    included: int
    overage_units: int
    overage_amount: int
    base_amount: int

    @property
    def total_amount(self) -> int:
        return self.base_amount + self.overage_amount


def charges_for(plan: Plan, used: int) -> Charges:
    # The plan's own maths: overage = Decimal unit price × units, rounded half up per line,
    # as Stripe rounds a line item priced with `unit_amount_decimal`.
    return Charges(plan.included_quantity, plan.overage_quantity(used), plan.overage_cost(used),
                   plan.base_amount)


def usage_sentence(used: int, metric: str, when: str, plan: Plan | None,
                   billed: bool = True) -> str:
    """The seeds' sentence: "You used 125,000 queries this month (25,000 over your 100,000
    limit = $20.00 overage)", with its variants for no overage, no plan and unbilled metrics."""
    singular, plural = _NOUNS.get(metric, (metric, metric))
    head = f"You used {used:,} {singular if used == 1 else plural} {when}"
    if plan is None:
        return f"{head} (no plan, so none of it is billed)"
    if not billed:
        return f"{head} ({plural} are not billed by your {plan.name} plan)"
    cost = charges_for(plan, used)
    if cost.overage_units == 0:
        return f"{head} (within your {cost.included:,} limit; no overage)"
    return (f"{head} ({cost.overage_units:,} over your {cost.included:,} limit = "
            f"{format_cents(cost.overage_amount, plan.currency)} overage)")
