"""Usage events: parsing, validation errors by index and field, the window, UTC-day buckets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from meterbill.domain.errors import InvalidInput
from meterbill.domain.usage import (
    MAX_BATCH,
    BatchTooLarge,
    DailyTotal,
    FieldError,
    UsageEvent,
    daily_buckets,
    day_bounds,
    days_between,
    parse_batch,
    parse_event,
    parse_timestamp,
    utc_day,
    window_error,
)

NOW = datetime(2026, 5, 20, 12, 0, 0, tzinfo=UTC)


def event(**overrides: object) -> dict[str, object]:
    raw: dict[str, object] = {"event_id": "evt_1", "tenant_id": "acme",
                              "timestamp": "2026-05-20T11:00:00Z"}
    raw.update(overrides)
    return {k: v for k, v in raw.items() if v is not _DROP}


_DROP = object()


def errors_of(raw: object) -> list[FieldError]:
    parsed = parse_event(raw, 7, now=NOW)
    assert isinstance(parsed, list), f"expected errors, got {parsed}"
    assert parsed and all(e.index == 7 for e in parsed)
    return parsed


def fields_of(raw: object) -> set[str | None]:
    return {e.field for e in errors_of(raw)}


# --- good input -------------------------------------------------------------------------


def test_defaults_metric_queries_and_quantity_one() -> None:
    parsed = parse_event(event(), 0, now=NOW)
    assert parsed == UsageEvent("evt_1", "acme", "queries", 1,
                                datetime(2026, 5, 20, 11, tzinfo=UTC), NOW)


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-05-20T11:00:00Z", datetime(2026, 5, 20, 11, tzinfo=UTC)),
    ("2026-05-20T13:00:00+02:00", datetime(2026, 5, 20, 11, tzinfo=UTC)),
    ("2026-05-20T11:00:00.999999+00:00", datetime(2026, 5, 20, 11, tzinfo=UTC)),
    (1779274800, datetime(2026, 5, 20, 11, tzinfo=UTC)),
    ("1779274800", datetime(2026, 5, 20, 11, tzinfo=UTC)),
    (1779274800.7, datetime(2026, 5, 20, 11, tzinfo=UTC)),
])
def test_timestamps_iso_or_unix_seconds_become_whole_utc_seconds(
    value: object, expected: datetime
) -> None:
    assert parse_timestamp(value) == expected
    assert parse_timestamp(value).tzinfo is UTC


def test_csv_style_strings_and_tokens_metric() -> None:
    parsed = parse_event(event(metric="tokens", quantity="1500", occurred_at=_DROP), 0, now=NOW)
    assert isinstance(parsed, UsageEvent)
    assert (parsed.metric, parsed.quantity) == ("tokens", 1500)
    blank_optional = parse_event(event(metric="", quantity=" "), 0, now=NOW)
    assert isinstance(blank_optional, UsageEvent)
    assert (blank_optional.metric, blank_optional.quantity) == ("queries", 1)


def test_occurred_at_is_accepted_as_the_timestamp_field() -> None:
    parsed = parse_event(event(timestamp=_DROP, occurred_at="2026-05-19T00:00:00Z"), 0, now=NOW)
    assert isinstance(parsed, UsageEvent)
    assert parsed.day == date(2026, 5, 19)


# --- bad input --------------------------------------------------------------------------


def test_unknown_metric_names_the_valid_ones() -> None:
    [error] = errors_of(event(metric="requests"))
    assert error.field == "metric"
    assert "'requests'" in error.message and "queries, tokens" in error.message


@pytest.mark.parametrize("quantity", [0, -5, "-1", 1.5, "1.5", "abc", True, [1], 10**13])
def test_bad_quantities(quantity: object) -> None:
    [error] = errors_of(event(quantity=quantity))
    assert error.field == "quantity"
    assert "quantity" in error.message


def test_negative_quantity_says_how_to_take_usage_back() -> None:
    [error] = errors_of(event(quantity=-3))
    assert "greater than 0" in error.message and "delete" in error.message


@pytest.mark.parametrize("missing", ["event_id", "tenant_id", "timestamp"])
def test_each_missing_required_field(missing: str) -> None:
    [error] = errors_of(event(**{missing: _DROP}))
    assert error.field == missing
    assert "required" in error.message


def test_every_problem_of_an_event_is_reported_at_once() -> None:
    assert fields_of({"metric": "x", "quantity": 0}) == {
        "event_id", "tenant_id", "metric", "quantity", "timestamp"}


def test_blank_and_non_string_ids() -> None:
    assert fields_of(event(event_id="  ", tenant_id=42)) == {"event_id", "tenant_id"}
    [error] = errors_of(event(event_id="x" * 256))
    assert "limit is 255" in error.message


@pytest.mark.parametrize(("value", "hint"), [
    ("yesterday", "not ISO 8601"),
    ("2026-13-01T00:00:00Z", "not ISO 8601"),
    ("2026-05-20T11:00:00", "no UTC offset"),
    ("2026-05-20", "no UTC offset"),
    (1779274800000, "milliseconds"),
    (True, "boolean"),
    ({"at": 1}, "ISO 8601"),
    (float("nan"), "not a time"),
])
def test_bad_timestamp_formats(value: object, hint: str) -> None:
    [error] = errors_of(event(timestamp=value))
    assert error.field == "timestamp"
    assert hint in error.message


def test_unknown_field_is_an_error_not_ignored() -> None:
    [error] = errors_of(event(quantitiy=5))
    assert error.field == "quantitiy"
    assert "Allowed fields" in error.message


def test_timestamp_and_occurred_at_together_is_ambiguous() -> None:
    [error] = errors_of(event(occurred_at="2026-05-20T10:00:00Z"))
    assert error.field == "occurred_at"


def test_non_object_event() -> None:
    [error] = errors_of(["evt_1", "acme"])
    assert error.field is None and "object" in error.message


# --- the window -------------------------------------------------------------------------


@pytest.mark.parametrize(("offset", "ok"), [
    (-timedelta(days=35), True),
    (-timedelta(days=35, seconds=1), False),
    (timedelta(minutes=5), True),
    (timedelta(minutes=5, seconds=1), False),
])
def test_window_is_stripes_35_days_back_5_minutes_ahead(offset: timedelta, ok: bool) -> None:
    assert (window_error(NOW + offset, NOW) is None) is ok
    parsed = parse_event(event(timestamp=int((NOW + offset).timestamp())), 0, now=NOW)
    assert isinstance(parsed, UsageEvent) is ok


def test_window_errors_say_which_side_and_the_limit() -> None:
    [old] = errors_of(event(timestamp="2026-04-01T00:00:00Z"))
    assert "more than 35 days" in old.message and "2026-04-15T12:00:00+00:00" in old.message
    [future] = errors_of(event(timestamp="2026-05-20T13:00:00Z"))
    assert "5 minutes" in future.message and "clock" in future.message


# --- batches ----------------------------------------------------------------------------


def test_batch_keeps_good_events_and_reports_bad_ones_by_index() -> None:
    batch = parse_batch([
        event(event_id="a"),
        event(event_id="b", quantity=-1),
        "not an event",
        event(event_id="d", metric="bytes", timestamp="soon"),
        event(event_id="e", quantity=3),
    ], now=NOW, first_index=100)
    assert [e.event_id for e in batch.events] == ["a", "e"]
    assert batch.indexes == [100, 104]
    assert [(e.index, e.field) for e in batch.errors] == [
        (101, "quantity"), (102, None), (103, "metric"), (103, "timestamp")]


def test_batch_limit_is_10000() -> None:
    good = parse_batch([event(event_id=str(i)) for i in range(MAX_BATCH)], now=NOW)
    assert len(good.events) == MAX_BATCH
    with pytest.raises(BatchTooLarge) as raised:
        parse_batch([event()] * (MAX_BATCH + 1), now=NOW)
    assert raised.value.field == "events" and raised.value.status == 413  # as the API answers
    assert "at most 10,000" in raised.value.message and "10,001" in raised.value.message


@pytest.mark.parametrize("not_a_list", [{"events": []}, "evt", None, 5])
def test_batch_must_be_a_list(not_a_list: object) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_batch(not_a_list, now=NOW)
    assert raised.value.field == "events"


# --- UTC days ---------------------------------------------------------------------------


def test_utc_day_of_an_offset_time_and_day_bounds() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert utc_day(datetime(2026, 5, 2, 8, 0, tzinfo=tokyo)) == date(2026, 5, 1)
    assert day_bounds(date(2026, 5, 1)) == (datetime(2026, 5, 1, tzinfo=UTC),
                                            datetime(2026, 5, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="timezone-aware"):
        utc_day(datetime(2026, 5, 1))


def test_days_between_is_half_open() -> None:
    start = datetime(2026, 4, 30, 23, tzinfo=UTC)
    assert days_between(start, datetime(2026, 5, 2, tzinfo=UTC)) == [
        date(2026, 4, 30), date(2026, 5, 1)]
    assert days_between(start, datetime(2026, 5, 2, 0, 0, 1, tzinfo=UTC))[-1] == date(2026, 5, 2)
    assert days_between(start, start) == []


def test_daily_buckets_dedupe_first_wins_and_filter_range() -> None:
    def ev(eid: str, tenant: str, hour: int, qty: int, metric: str = "queries") -> UsageEvent:
        at = datetime(2026, 5, 1, tzinfo=UTC) + timedelta(hours=hour)
        return UsageEvent(eid, tenant, metric, qty, at, NOW)  # type: ignore[arg-type]

    events = [ev("a", "t1", 1, 5), ev("a", "t1", 2, 50), ev("b", "t1", 25, 2),
              ev("c", "t2", 3, 1), ev("d", "t1", 4, 7, "tokens"), ev("e", "t1", 49, 9)]
    assert daily_buckets(events, end=datetime(2026, 5, 3, tzinfo=UTC)) == [
        DailyTotal("t1", "queries", date(2026, 5, 1), 5),
        DailyTotal("t1", "queries", date(2026, 5, 2), 2),
        DailyTotal("t1", "tokens", date(2026, 5, 1), 7),
        DailyTotal("t2", "queries", date(2026, 5, 1), 1),
    ]
