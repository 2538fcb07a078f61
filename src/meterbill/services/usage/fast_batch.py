"""A batch's events checked at once by a compiled validator (msgspec), into columns.

The domain's `parse_event` stays the rule book: msgspec only accepts the plain shape of an event
(string ids of 1-255 characters, a known metric, a whole quantity in range, one timestamp as a
string or an integer, no other field), and anything it does not accept, or that fails the
checks below, is handed to `parse_event`, which accepts it or says what is wrong exactly as
before. So a rejected event gets the same message whichever way it came, and an accepted one
the same values (tests/meterbill/usage/test_fast_batch.py compares both on a corpus).

Timestamps go through the domain's `parse_timestamp`, once per distinct value in the batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from ...domain.usage import (
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
    """One already decoded event (a dict from JSON) in the plain shape, or None."""
    try:
        return msgspec.convert(raw, PlainEvent)
    except msgspec.ValidationError:
        return None


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
    seconds_of: dict[str | int, int | None] = {}
    ids: list[str] = []
    tenants: list[str] = []
    metrics: list[str] = []
    quantities: list[int] = []
    occurred: list[int] = []
    indexes: list[int] = []
    errors: list[FieldError] = []
    for index, event in enumerate(events):
        seconds = None
        if event is not None and not (event.event_id.isspace() or event.tenant_id.isspace()):
            value = event.timestamp
            if event.occurred_at is not None:
                value = None if value is not None else event.occurred_at
            if value is not None:
                if value in seconds_of:
                    seconds = seconds_of[value]
                else:
                    seconds = seconds_of[value] = _seconds(value)
                if seconds is not None and not earliest <= seconds <= latest:
                    seconds = None
        if seconds is not None and event is not None:
            ids.append(event.event_id)
            tenants.append(event.tenant_id)
            metrics.append(event.metric)
            quantities.append(event.quantity)
        else:
            # Not plainly good: the domain decides, with its own messages.
            parsed = parse_event(raw_at(index), index, now=now, ingested_at=stamp)
            if not isinstance(parsed, UsageEvent):
                errors.extend(parsed)
                continue
            ids.append(parsed.event_id)
            tenants.append(parsed.tenant_id)
            metrics.append(parsed.metric)
            quantities.append(parsed.quantity)
            seconds = int(parsed.occurred_at.timestamp())
        occurred.append(seconds)
        indexes.append(index)
    columns = EventColumns(ids, tenants, metrics, quantities, occurred,
                           [ingested_s] * len(ids))
    return columns, indexes, errors


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
