"""Billing meters, meter events, cancel adjustments and event summaries (v1, plus the v2 stream).

Meter events are not API objects with ids; they live in one private index object in the store,
keyed by event name then customer, so that totals for one subscription item read a short list
instead of scanning every event (`usage_total` runs once per metered item per invoice).
Identifiers stay unique for `config.meter_identifier_ttl_seconds` of real time, as Stripe keeps
them for at least 24 hours; timestamps must fall within 35 days before and 5 minutes after the
customer's clock (a test clock's frozen time for test-clock customers).
"""

from __future__ import annotations

import copy
import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..engine import Call, Sandbox
from ..errors import InvalidRequestError, NotFoundError
from ..listing import paginate
from ..router import Routes
from ..wire import as_int
from .common import require

routes = Routes()

FORMULAS = ("count", "last", "sum")
PAST_WINDOW = 35 * 86400
FUTURE_WINDOW = 5 * 60
CANCEL_WINDOW = 24 * 3600
_WINDOWS = {"hour": 3600, "day": 86400}
_WHOLE = re.compile(r"^-?\d+$")
_INDEX_TYPE, _INDEX_ID = "_sandbox.meter_events", "_meter_event_index"


# --- the event index ---------------------------------------------------------------------


def _index(sandbox: Sandbox) -> dict[str, Any]:
    """`by_name[event_name][customer]`: events in the order received. `by_identifier` points
    into those lists (name, customer, position) rather than sharing the dicts, so that the
    index survives a JSON save and load intact."""
    index = sandbox.store.get(_INDEX_TYPE, _INDEX_ID)
    if index is None:
        index = sandbox.store.put(
            {"id": _INDEX_ID, "object": _INDEX_TYPE, "by_name": {}, "by_identifier": {}}
        )
    return index


def _meter_for(sandbox: Sandbox, event_name: str) -> dict[str, Any] | None:
    for meter in sandbox.store.all("billing.meter"):
        if meter["event_name"] == event_name:
            return meter
    return None


def _aggregate(meter: dict[str, Any], events: list[dict[str, Any]]) -> int:
    """Sum, count or last value of live events (given in the order they were received)."""
    live = [e for e in events if not e["cancelled"]]
    window = _WINDOWS.get(meter.get("event_time_window") or "")
    if window:  # pre-aggregated meters: the latest event received in each window wins
        latest: dict[int, dict[str, Any]] = {}
        for event in live:
            latest[event["timestamp"] // window] = event
        live = list(latest.values())
    formula = meter["default_aggregation"]["formula"]
    if formula == "count":
        return len(live)
    if formula == "sum":
        return sum(e["value"] for e in live)
    if not live:
        return 0
    newest = live[0]
    for event in live[1:]:  # later timestamp wins; on a tie the later-received one
        if event["timestamp"] >= newest["timestamp"]:
            newest = event
    return int(newest["value"])


def _events_of(sandbox: Sandbox, meter: dict[str, Any], customer_id: str, start: int, end: int
               ) -> list[dict[str, Any]]:
    by_customer = _index(sandbox)["by_name"].get(meter["event_name"], {})
    return [e for e in by_customer.get(customer_id, ()) if start <= e["timestamp"] < end]


def usage_total(sandbox: Sandbox, meter_id: str, customer_id: str, start: int, end: int
                ) -> Decimal:
    """The meter's aggregate for one customer over `start <= timestamp < end`."""
    meter = sandbox.store.get("billing.meter", meter_id)
    if meter is None:
        raise LookupError(f"No such billing meter: {meter_id!r}")
    return Decimal(_aggregate(meter, _events_of(sandbox, meter, customer_id, start, end)))


# --- meters ------------------------------------------------------------------------------


def _live_meter(call: Call, meter_id: str) -> dict[str, Any]:
    meter = call.store.get("billing.meter", meter_id)
    if meter is None:
        raise NotFoundError("billing meter", meter_id)
    return meter


def _payload_key(value: Any, param: str, default: str) -> str:
    if value in (None, ""):
        return default
    if not isinstance(value, dict) or value.get("event_payload_key") in (None, ""):
        raise InvalidRequestError(f"Missing required param: {param}[event_payload_key].",
                                  param=f"{param}[event_payload_key]", code="parameter_missing")
    return str(value["event_payload_key"])


@routes.post("/v1/billing/meters")
def create_meter(call: Call) -> dict[str, Any]:
    p = call.params
    display_name = require(p, "display_name")
    event_name = str(require(p, "event_name"))
    aggregation = p.get("default_aggregation")
    formula = aggregation.get("formula") if isinstance(aggregation, dict) else None
    if formula in (None, ""):
        raise InvalidRequestError("Missing required param: default_aggregation[formula].",
                                  param="default_aggregation[formula]", code="parameter_missing")
    if formula not in FORMULAS:
        raise InvalidRequestError(
            "Invalid default_aggregation[formula]: must be one of count, last, or sum",
            param="default_aggregation[formula]",
        )
    mapping = p.get("customer_mapping")
    if isinstance(mapping, dict) and mapping.get("type") not in (None, "by_id"):
        raise InvalidRequestError("Invalid customer_mapping[type]: must be by_id",
                                  param="customer_mapping[type]")
    window = p.get("event_time_window") or None
    if window is not None and window not in _WINDOWS:
        raise InvalidRequestError("Invalid event_time_window: must be one of day or hour",
                                  param="event_time_window")
    if _meter_for(call.sandbox, event_name) is not None:
        raise InvalidRequestError(
            f"A meter with event_name `{event_name}` already exists. An event name can only be "
            "used by a single meter.",
            param="event_name",
        )
    now = call.now()
    meter = {
        "id": call.store.new_id("mtr_test", 32),
        "object": "billing.meter",
        "created": now,
        "customer_mapping": {
            "event_payload_key": _payload_key(mapping, "customer_mapping", "stripe_customer_id"),
            "type": "by_id",
        },
        "default_aggregation": {"formula": formula},
        "display_name": str(display_name),
        "event_name": event_name,
        "event_time_window": window,
        "livemode": False,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": now,
        "value_settings": {
            "event_payload_key": _payload_key(p.get("value_settings"), "value_settings", "value")
        },
    }
    call.store.put(meter)
    call.sandbox.emit("billing.meter.created", meter, request=call)
    return meter


@routes.get("/v1/billing/meters")
def list_meters(call: Call) -> dict[str, Any]:
    status = call.params.get("status")
    found = [m for m in call.store.all("billing.meter") if not status or m["status"] == status]
    return paginate(found, call.params, "/v1/billing/meters")


@routes.get("/v1/billing/meters/{id}")
def retrieve_meter(call: Call, id: str) -> dict[str, Any]:  # noqa: A002 - stripe-python's name
    return _live_meter(call, id)


@routes.post("/v1/billing/meters/{id}")
def update_meter(call: Call, id: str) -> dict[str, Any]:  # noqa: A002
    meter = _live_meter(call, id)
    name = call.params.get("display_name")
    if name not in (None, "") and name != meter["display_name"]:
        previous = {"display_name": meter["display_name"], "updated": meter["updated"]}
        meter["display_name"] = str(name)
        meter["updated"] = call.now()
        call.sandbox.emit("billing.meter.updated", meter, previous, request=call)
    return meter


def _set_status(call: Call, meter: dict[str, Any], status: str) -> dict[str, Any]:
    if meter["status"] == status:
        return meter
    previous = {"status": meter["status"],
                "status_transitions": copy.deepcopy(meter["status_transitions"]),
                "updated": meter["updated"]}
    now = call.now()
    meter["status"] = status
    meter["status_transitions"]["deactivated_at"] = now if status == "inactive" else None
    meter["updated"] = now
    event = "billing.meter.deactivated" if status == "inactive" else "billing.meter.reactivated"
    call.sandbox.emit(event, meter, previous, request=call)
    return meter


@routes.post("/v1/billing/meters/{id}/deactivate")
def deactivate(call: Call, id: str) -> dict[str, Any]:  # noqa: A002
    return _set_status(call, _live_meter(call, id), "inactive")


@routes.post("/v1/billing/meters/{id}/reactivate")
def reactivate(call: Call, id: str) -> dict[str, Any]:  # noqa: A002
    return _set_status(call, _live_meter(call, id), "active")


# --- meter events ------------------------------------------------------------------------


def _check_event(call: Call, event_name: Any, payload: Any, identifier: Any, timestamp: Any,
                 param_prefix: str = "") -> dict[str, Any]:
    """Validate one meter event fully; return the record to store (not yet stored)."""
    def param(name: str) -> str:
        return f"{param_prefix}{name}"

    if event_name in (None, ""):
        raise InvalidRequestError(f"Missing required param: {param('event_name')}.",
                                  param=param("event_name"), code="parameter_missing")
    if not isinstance(payload, dict) or not payload:
        raise InvalidRequestError(f"Missing required param: {param('payload')}.",
                                  param=param("payload"), code="parameter_missing")
    meter = _meter_for(call.sandbox, str(event_name))
    if meter is None:
        raise InvalidRequestError(
            f"No active meter was found for the event name `{event_name}`.",
            param=param("event_name"), code="no_meter")
    if meter["status"] != "active":
        raise InvalidRequestError(
            f"The meter `{meter['id']}` for the event name `{event_name}` is inactive; "
            "reactivate it to record usage.",
            param=param("event_name"), code="archived_meter")
    customer_key = meter["customer_mapping"]["event_payload_key"]
    customer_id = payload.get(customer_key)
    if customer_id in (None, ""):
        raise InvalidRequestError(
            f"The payload is missing the customer mapping key `{customer_key}`.",
            param=param(f"payload[{customer_key}]"), code="meter_event_no_customer_defined")
    customer = call.store.get("customer", str(customer_id))
    if customer is None or customer.get("deleted"):
        raise InvalidRequestError(
            f"No customer was found with ID `{customer_id}`.",
            param=param(f"payload[{customer_key}]"), code="meter_event_customer_not_found")
    value_key = meter["value_settings"]["event_payload_key"]
    raw_value = payload.get(value_key)
    value = None
    if meter["default_aggregation"]["formula"] != "count" or raw_value is not None:
        if raw_value is None or not _WHOLE.match(str(raw_value).strip()):
            raise InvalidRequestError(
                f"The payload key `{value_key}` must be a whole number (got {raw_value!r}); "
                "meter event values only accept whole numbers.",
                param=param(f"payload[{value_key}]"), code="meter_event_invalid_value")
        value = int(str(raw_value).strip())
    clock_now = call.now(customer.get("test_clock"))
    ts = clock_now if timestamp in (None, "") else as_int(timestamp, param("timestamp"))
    if ts < clock_now - PAST_WINDOW:
        raise InvalidRequestError(
            "The event timestamp cannot be more than 35 days in past. Expected a timestamp "
            f"greater than or equal to {clock_now - PAST_WINDOW}.", param=param("timestamp"))
    if ts > clock_now + FUTURE_WINDOW:
        raise InvalidRequestError(
            "The event timestamp cannot be more than 5 minutes in the future. Expected a "
            f"timestamp less than or equal to {clock_now + FUTURE_WINDOW}.",
            param=param("timestamp"))
    received = call.now()
    if identifier in (None, ""):
        identifier = str(uuid.uuid4())
    identifier = str(identifier)
    if len(identifier) > 100:
        raise InvalidRequestError("Invalid identifier: must be at most 100 characters",
                                  param=param("identifier"))
    seen = _find(call.sandbox, identifier)
    ttl = call.sandbox.config.meter_identifier_ttl_seconds
    if seen is not None and received - seen["received"] < ttl:
        raise InvalidRequestError(f"An event already exists with identifier {identifier}.",
                                  param=param("identifier"))
    return {
        "cancelled": False,
        "created": clock_now,
        "customer": str(customer_id),
        "event_name": str(event_name),
        "identifier": identifier,
        "payload": {str(k): str(v) for k, v in payload.items()},
        "received": received,
        "timestamp": ts,
        "value": value,
    }


def _record(call: Call, event: dict[str, Any]) -> None:
    index = _index(call.sandbox)
    events = index["by_name"].setdefault(event["event_name"], {}).setdefault(
        event["customer"], [])
    events.append(event)
    index["by_identifier"][event["identifier"]] = [event["event_name"], event["customer"],
                                                   len(events) - 1]


def _find(sandbox: Sandbox, identifier: str) -> dict[str, Any] | None:
    """The latest event recorded with `identifier`."""
    index = _index(sandbox)
    where = index["by_identifier"].get(identifier)
    if where is None:
        return None
    name, customer, position = where
    event: dict[str, Any] = index["by_name"][name][customer][position]
    return event


def _event_object(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "billing.meter_event",
        "created": event["created"],
        "event_name": event["event_name"],
        "identifier": event["identifier"],
        "livemode": False,
        "payload": dict(event["payload"]),
        "timestamp": event["timestamp"],
    }


@routes.post("/v1/billing/meter_events")
def create_event(call: Call) -> dict[str, Any]:
    p = call.params
    event = _check_event(call, p.get("event_name"), p.get("payload"), p.get("identifier"),
                         p.get("timestamp"))
    _record(call, event)
    return _event_object(event)


def _cancel(call: Call, event_name: Any, cancel: Any, kind: str) -> dict[str, Any]:
    if event_name in (None, ""):
        raise InvalidRequestError("Missing required param: event_name.", param="event_name",
                                  code="parameter_missing")
    if kind != "cancel":
        raise InvalidRequestError("Invalid type: must be cancel", param="type")
    identifier = cancel.get("identifier") if isinstance(cancel, dict) else None
    if identifier in (None, ""):
        raise InvalidRequestError("Missing required param: cancel[identifier].",
                                  param="cancel[identifier]", code="parameter_missing")
    event = _find(call.sandbox, str(identifier))
    if event is None or event["event_name"] != event_name:
        raise InvalidRequestError(
            f"No meter event with identifier `{identifier}` was found for the event name "
            f"`{event_name}`.", param="cancel[identifier]", code="resource_missing")
    if call.now() - event["received"] > CANCEL_WINDOW:
        raise InvalidRequestError(
            "You can only cancel events within 24 hours of Stripe receiving them.",
            param="cancel[identifier]")
    event["cancelled"] = True
    return {"cancel": {"identifier": str(identifier)}, "event_name": str(event_name),
            "livemode": False, "status": "complete", "type": "cancel"}


@routes.post("/v1/billing/meter_event_adjustments")
def create_adjustment(call: Call) -> dict[str, Any]:
    p = call.params
    result = _cancel(call, p.get("event_name"), p.get("cancel"), p.get("type") or "")
    return {"object": "billing.meter_event_adjustment", **result}


# --- event summaries ---------------------------------------------------------------------


def _aligned(value: int, step: int, param: str, what: str) -> None:
    if value % step:
        raise InvalidRequestError(f"{param} must be aligned with {what} boundaries.",
                                  param=param)


@routes.get("/v1/billing/meters/{id}/event_summaries")
def event_summaries(call: Call, id: str) -> dict[str, Any]:  # noqa: A002
    meter = _live_meter(call, id)
    p = call.params
    customer_id = str(require(p, "customer"))
    start = as_int(require(p, "start_time"), "start_time")
    end = as_int(require(p, "end_time"), "end_time")
    grouping = p.get("value_grouping_window") or None
    if grouping is not None and grouping not in _WINDOWS:
        raise InvalidRequestError("Invalid value_grouping_window: must be one of day or hour",
                                  param="value_grouping_window")
    step, what = (_WINDOWS[grouping], grouping) if grouping else (60, "minute")
    _aligned(start, step, "start_time", what)
    _aligned(end, step, "end_time", what)
    if start >= end:
        raise InvalidRequestError("start_time must be before end_time.", param="start_time")
    if call.store.get("customer", customer_id) is None:
        raise InvalidRequestError(f"No such customer: '{customer_id}'", param="customer",
                                  code="resource_missing")
    events = _events_of(call.sandbox, meter, customer_id, start, end)
    if grouping is None:
        windows = [(start, end, events)]
    else:  # only windows holding usage, as Stripe lists them
        buckets: dict[int, list[dict[str, Any]]] = {}
        for event in events:
            first = start + (event["timestamp"] - start) // step * step
            buckets.setdefault(first, []).append(event)
        windows = [(first, first + step, buckets[first]) for first in sorted(buckets)]
    summaries = [_summary(meter, customer_id, a, b, evs) for a, b, evs in windows]
    return paginate(summaries, p, f"/v1/billing/meters/{id}/event_summaries")


def _summary(meter: dict[str, Any], customer_id: str, start: int, end: int,
             events: list[dict[str, Any]]) -> dict[str, Any]:
    # A stable id per window, so that `starting_after` pages work across calls.
    key = f"{meter['id']}:{customer_id}:{start}:{end}".encode()
    return {
        "id": "mtrusg_test_" + hashlib.sha256(key).hexdigest()[:40],
        "object": "billing.meter_event_summary",
        "aggregated_value": _aggregate(meter, events),
        "end_time": end,
        "livemode": False,
        "meter": meter["id"],
        "start_time": start,
    }


# --- v2: meter events, adjustments and the high-throughput stream ------------------------


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _from_iso(value: Any, param: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise InvalidRequestError(f"Invalid timestamp: {value} is not an RFC 3339 date-time",
                                  param=param) from None


def _v2_event_object(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "v2.billing.meter_event",
        "created": _iso(event["received"]),
        "event_name": event["event_name"],
        "identifier": event["identifier"],
        "livemode": False,
        "payload": dict(event["payload"]),
        "timestamp": _iso(event["timestamp"]),
    }


@routes.post("/v2/billing/meter_events")
def create_v2_event(call: Call) -> dict[str, Any]:
    p = call.params
    event = _check_event(call, p.get("event_name"), p.get("payload"), p.get("identifier"),
                         _from_iso(p.get("timestamp"), "timestamp"))
    _record(call, event)
    return _v2_event_object(event)


@routes.post("/v2/billing/meter_event_adjustments")
def create_v2_adjustment(call: Call) -> dict[str, Any]:
    p = call.params
    result = _cancel(call, p.get("event_name"), p.get("cancel"), p.get("type") or "")
    return {"id": call.store.new_id("mtradj_test", 32), "object":
            "v2.billing.meter_event_adjustment", "created": _iso(call.now()), **result}


SESSION_SECONDS = 15 * 60


@routes.post("/v2/billing/meter_event_session")
def create_session(call: Call) -> dict[str, Any]:
    now = call.now()
    session = {
        "id": call.store.new_id("mes_test", 32),
        "object": "v2.billing.meter_event_session",
        "authentication_token": "ek_test_" + secrets.token_urlsafe(32),
        "created": _iso(now),
        "expires_at": _iso(now + SESSION_SECONDS),
        "livemode": False,
        "_expires": now + SESSION_SECONDS,
    }
    return call.store.put(session)


def stream_token_valid(sandbox: Sandbox, token: str) -> bool:
    """Whether `token` is an unexpired meter event session token (for the engine's auth)."""
    now = sandbox.now()
    return any(s["authentication_token"] == token and s["_expires"] > now
               for s in sandbox.store.all("v2.billing.meter_event_session"))


@routes.post("/v2/billing/meter_event_stream")
def stream(call: Call) -> dict[str, Any]:
    events = call.params.get("events")
    if not isinstance(events, list) or not events:
        raise InvalidRequestError("Missing required param: events.", param="events",
                                  code="parameter_missing")
    if len(events) > 100:
        raise InvalidRequestError("A request can hold at most 100 events.", param="events")
    checked: list[dict[str, Any]] = []
    for i, raw in enumerate(events):
        if not isinstance(raw, dict):
            raise InvalidRequestError("Invalid object", param=f"events[{i}]",
                                      code="parameter_invalid_object")
        event = _check_event(call, raw.get("event_name"), raw.get("payload"),
                             raw.get("identifier"),
                             _from_iso(raw.get("timestamp"), f"events[{i}][timestamp]"),
                             param_prefix=f"events[{i}].")
        if any(e["identifier"] == event["identifier"] for e in checked):
            raise InvalidRequestError(
                f"An event already exists with identifier {event['identifier']}.",
                param=f"events[{i}].identifier")
        checked.append(event)
    for event in checked:
        _record(call, event)
    return {}
