"""A batch's events checked at once by a compiled validator (msgspec), into columns.

The domain's `parse_event` stays the rule book: msgspec only accepts the plain shape of an event
(string ids of 1-255 characters, a known metric, a whole quantity in range, one timestamp as a
string or an integer, no other field), and anything it does not accept, or that fails the
checks below, is handed to `parse_event`, which accepts it or says what is wrong exactly as
before. So a rejected event gets the same message whichever way it came, and an accepted one
the same values (tests/meterbill/usage/test_fast_batch.py compares both on a corpus).

Timestamps in the canonical form are read for the whole batch at once by Arrow; any other goes
through the domain's `parse_timestamp`, once per distinct value in the batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Literal, cast

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from ...domain.usage import (
    FIELDS,
    MAX_BATCH,
    MAX_ID_LENGTH,
    MAX_QUANTITY,
    EventColumns,
    FieldError,
    UsageEvent,
    accepted_window,
    parse_event,
    parse_timestamp,
    whole_seconds,
)

_CANONICAL = "%Y-%m-%dT%H:%M:%SZ"
_CANONICAL_PATTERN = (r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
                      r"T([01]\d|2[0-3]):[0-5]\d:[0-5]\dZ$")
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]


class PlainEvent(msgspec.Struct, forbid_unknown_fields=True):
    """An event in the plain shape; `None` timestamps mean the field was absent."""

    event_id: _Id
    tenant_id: _Id
    metric: Literal["queries", "tokens"] = "queries"
    quantity: Annotated[int, msgspec.Meta(gt=0, le=MAX_QUANTITY)] = 1
    timestamp: str | int | None = None
    occurred_at: str | int | None = None


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    events: Annotated[list[PlainEvent], msgspec.Meta(max_length=MAX_BATCH)]


_decode_body = msgspec.json.Decoder(_Body).decode


def decode_body(body: bytes) -> list[PlainEvent] | None:
    """The events of a `{"events": [...]}` body whose events all have the plain shape, or None
    when anything differs (then the caller decodes it with `json` and its general checks)."""
    try:
        return _decode_body(body).events
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def plain(raw: object) -> PlainEvent | None:
    """One already decoded event (a dict from JSON or a CSV row) in the plain shape, or None.

    A CSV row's cells are strings: blank cells of event fields are left out (the domain reads
    them as absent) and a quantity of ASCII digits is read as the number it writes.
    """
    try:
        return _text_only(msgspec.convert(raw, PlainEvent))
    except msgspec.ValidationError:
        pass
    if not isinstance(raw, dict):
        return None
    tidy: dict[object, object] = {}
    for key, value in raw.items():
        if key in FIELDS and (value is None or (isinstance(value, str) and not value.strip())):
            continue
        if key == "quantity" and isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        tidy[key] = value
    try:
        return _text_only(msgspec.convert(tidy, PlainEvent))
    except msgspec.ValidationError:
        return None


def _text_only(event: PlainEvent) -> PlainEvent | None:
    """The event, unless a string of it cannot be UTF-8 (a lone surrogate that `json` let
    through; msgspec's own decoding refuses them): the domain's parser says what is wrong."""
    try:
        for value in (event.event_id, event.tenant_id, event.timestamp, event.occurred_at):
            if isinstance(value, str):
                value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return event


def to_columns(
    events: Sequence[PlainEvent | None],
    raw_at: Callable[[int], object],
    now: datetime,
) -> tuple[EventColumns, list[int], list[FieldError]]:
    """The good events as columns (in batch order), their indexes, and the others' errors.

    `events[i]` is None where event i is not in the plain shape; `raw_at(i)` gives the raw
    event for `parse_event` (only called for those and for the ones failing a check here).
    """
    stamp = whole_seconds(now)
    ingested_s = int(stamp.timestamp())
    earliest, latest = (int(moment.timestamp()) for moment in accepted_window(now))
    seconds = _plain_seconds(events, earliest, latest)
    if None not in seconds:  # every event plainly good: columns straight from the structs
        good = cast(list[PlainEvent], events)
        columns = EventColumns([e.event_id for e in good], [e.tenant_id for e in good],
                               [e.metric for e in good], [e.quantity for e in good],
                               cast(list[int], seconds), [ingested_s] * len(good))
        return columns, list(range(len(good))), []
    columns = EventColumns.empty()
    indexes: list[int] = []
    errors: list[FieldError] = []
    for index, (event, second) in enumerate(zip(events, seconds, strict=True)):
        if event is not None and second is not None:
            columns.append(event.event_id, event.tenant_id, event.metric, event.quantity,
                           second, ingested_s)
        else:
            # Not plainly good: the domain decides, with its own messages.
            parsed = parse_event(raw_at(index), index, now=now, ingested_at=stamp)
            if not isinstance(parsed, UsageEvent):
                errors.extend(parsed)
                continue
            columns.append(parsed.event_id, parsed.tenant_id, parsed.metric, parsed.quantity,
                           int(parsed.occurred_at.timestamp()), ingested_s)
        indexes.append(index)
    return columns, indexes, errors


def _plain_seconds(
    events: Sequence[PlainEvent | None], earliest: int, latest: int
) -> list[int | None]:
    """Each event's `occurred_at` in Unix seconds, or None where the event is not plainly good
    (not in the plain shape, a blank id, no timestamp or both names, outside the window)."""
    values: list[str | int | None] = []
    for event in events:
        if event is None or event.event_id.isspace() or event.tenant_id.isspace():
            values.append(None)
        elif event.occurred_at is None:
            values.append(event.timestamp)
        else:
            values.append(event.occurred_at if event.timestamp is None else None)
    strings = [value if isinstance(value, str) else None for value in values]
    # The canonical form (2026-05-01T12:00:00Z) is parsed by Arrow for the whole batch at once.
    # Arrow alone also takes 23:59:60, a leading space or unpadded fields (the pattern rules
    # them out) and rolls April 31 over to May 1 (its day then differs from the text's).
    text = pa.array(strings, pa.string())
    shaped = pc.match_substring_regex(text, _CANONICAL_PATTERN)
    text = pc.if_else(shaped, text, None)  # only digits where the day is sliced out below
    moments = pc.strptime(text, format=_CANONICAL, unit="s", error_is_null=True)
    exact = pc.equal(pc.day(moments),
                     pc.utf8_slice_codeunits(text, 8, 10).cast(pa.int64()))
    canonical = pc.if_else(exact, moments.cast(pa.int64()), None).to_pylist()
    out: list[int | None] = []
    parsed: dict[str | int, int | None] = {}
    for value, quick in zip(values, canonical, strict=True):
        if quick is None and value is not None:
            if value not in parsed:
                parsed[value] = _seconds(value)
            quick = parsed[value]
        out.append(quick if quick is not None and earliest <= quick <= latest else None)
    return out


def _seconds(value: str | int) -> int | None:
    """Unix seconds of a timestamp as the domain reads it, or None if it does not."""
    try:
        return int(parse_timestamp(value).timestamp())
    except ValueError:
        return None


def raw_events_of(body: bytes) -> Callable[[int], object]:
    """`raw_at` for a body that `decode_body` accepted: decoded with `json` (as the general
    path does) only if some event needs the domain's parser."""
    cache: list[list[object]] = []

    def raw_at(index: int) -> object:
        if not cache:
            cache.append(json.loads(body)["events"])
        return cache[0][index]

    return raw_at
