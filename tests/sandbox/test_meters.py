"""Billing meters, meter events, adjustments and summaries through the official client."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import stripe

from stripe_sandbox import Sandbox
from stripe_sandbox.resources.meters import stream_token_valid, usage_total

DAY, HOUR = 86_400, 3_600


def _meter(client: stripe.StripeClient, formula: str = "sum", name: str = "queries"
           ) -> stripe.billing.Meter:
    return client.v1.billing.meters.create(params={
        "display_name": name.title(), "event_name": name,
        "default_aggregation": {"formula": formula},
    })


def _day_start(sandbox: Sandbox) -> int:
    return sandbox.now() // DAY * DAY


def _send(client: stripe.StripeClient, customer: str, value: int | str, at: int,
          event_name: str = "queries", identifier: str | None = None
          ) -> stripe.billing.MeterEvent:
    params = {"event_name": event_name, "timestamp": at,
              "payload": {"stripe_customer_id": customer, "value": str(value)}}
    if identifier:
        params["identifier"] = identifier
    return client.v1.billing.meter_events.create(params=params)  # type: ignore[arg-type]


def _error(call) -> stripe.InvalidRequestError:
    with pytest.raises(stripe.InvalidRequestError) as info:
        call()
    return info.value


def test_meter_defaults_lifecycle_and_events(client, sandbox) -> None:
    meter = _meter(client)
    assert meter.id.startswith("mtr_") and meter.status == "active"
    assert meter.customer_mapping.to_dict() == {"event_payload_key": "stripe_customer_id",
                                                "type": "by_id"}
    assert meter.value_settings.event_payload_key == "value"
    assert meter.status_transitions.deactivated_at is None
    renamed = client.v1.billing.meters.update(meter.id, params={"display_name": "Searches"})
    assert renamed.display_name == "Searches"
    off = client.v1.billing.meters.deactivate(meter.id)
    assert off.status == "inactive" and off.status_transitions.deactivated_at is not None
    assert [m.id for m in client.v1.billing.meters.list(params={"status": "active"}).data] == []
    customer = client.v1.customers.create()
    error = _error(lambda: _send(client, customer.id, 1, sandbox.now()))
    assert error.code == "archived_meter"
    on = client.v1.billing.meters.reactivate(meter.id)
    assert on.status == "active" and on.status_transitions.deactivated_at is None
    assert client.v1.billing.meters.retrieve(meter.id).display_name == "Searches"
    kinds = [e["type"] for e in sandbox.store.all("event") if e["type"].startswith("billing.")]
    assert kinds == ["billing.meter.created", "billing.meter.updated",
                     "billing.meter.deactivated", "billing.meter.reactivated"]
    duplicate = _error(lambda: _meter(client))
    assert duplicate.param == "event_name"


@pytest.mark.parametrize(("formula", "expected"), [("sum", 60), ("count", 3), ("last", 25)])
def test_formulas_and_usage_total(client, sandbox, formula, expected) -> None:
    meter = _meter(client, formula)
    customer = client.v1.customers.create()
    other = client.v1.customers.create()
    start = _day_start(sandbox) - 2 * DAY
    _send(client, customer.id, 10, start + 10)
    _send(client, customer.id, 25, start + 30)  # the latest timestamp: `last`
    _send(client, customer.id, 25, start + 20)
    _send(client, other.id, 1000, start + 20)
    _send(client, customer.id, 7, start + DAY)  # outside [start, start + DAY)
    total = usage_total(sandbox, meter.id, customer.id, start, start + DAY)
    assert total == Decimal(expected) and isinstance(total, Decimal)
    assert usage_total(sandbox, meter.id, customer.id, start + DAY + 1, start + 2 * DAY) == 0


def test_meter_event_object_and_generated_identifier(client, sandbox) -> None:
    _meter(client)
    customer = client.v1.customers.create()
    event = client.v1.billing.meter_events.create(params={
        "event_name": "queries", "payload": {"stripe_customer_id": customer.id, "value": "25"}})
    assert event.object == "billing.meter_event" and event.identifier
    assert event.payload.to_dict() == {"stripe_customer_id": customer.id, "value": "25"}
    assert abs(event.timestamp - sandbox.now()) <= 1


def test_a_repeated_identifier_is_refused_until_it_expires(client, sandbox) -> None:
    meter = _meter(client)
    customer = client.v1.customers.create()
    now = sandbox.now()
    _send(client, customer.id, 5, now, identifier="usage:t1:queries:day1:0")
    error = _error(lambda: _send(client, customer.id, 5, now,
                                 identifier="usage:t1:queries:day1:0"))
    assert error.http_status == 400
    assert error.user_message == "An event already exists with identifier usage:t1:queries:day1:0."
    assert usage_total(sandbox, meter.id, customer.id, now - DAY, now + DAY) == 5
    sandbox._clock_offset += sandbox.config.meter_identifier_ttl_seconds + 1
    _send(client, customer.id, 5, sandbox.now(), identifier="usage:t1:queries:day1:0")
    assert usage_total(sandbox, meter.id, customer.id, now - DAY, sandbox.now() + 1) == 10


def test_timestamp_window_follows_the_customer_clock(client, sandbox) -> None:
    meter = _meter(client)
    customer = client.v1.customers.create()
    now = sandbox.now()
    too_old = _error(lambda: _send(client, customer.id, 1, now - 35 * DAY - 60))
    assert too_old.param == "timestamp" and "35 days in past" in too_old.user_message
    too_new = _error(lambda: _send(client, customer.id, 1, now + 6 * 60))
    assert "5 minutes in the future" in too_new.user_message
    _send(client, customer.id, 1, now - 34 * DAY)
    _send(client, customer.id, 1, now + 4 * 60)
    # A test-clock customer: the window is around the clock's frozen time, not today.
    frozen = now - 100 * DAY
    sandbox.store.put({"id": "clock_test_meters", "object": "test_helpers.test_clock",
                       "frozen_time": frozen, "status": "ready"})
    clocked = client.v1.customers.create(params={"test_clock": "clock_test_meters"})
    _send(client, clocked.id, 3, frozen - DAY)
    assert _error(lambda: _send(client, clocked.id, 3, now)).param == "timestamp"
    default_time = client.v1.billing.meter_events.create(params={
        "event_name": "queries", "payload": {"stripe_customer_id": clocked.id, "value": "4"}})
    assert default_time.timestamp == frozen
    assert usage_total(sandbox, meter.id, clocked.id, frozen - DAY, frozen + 1) == 7


def test_payload_errors(client) -> None:
    _meter(client)
    customer = client.v1.customers.create()
    bad_value = _error(lambda: _send(client, customer.id, "1.5", None))  # type: ignore[arg-type]
    assert bad_value.code == "meter_event_invalid_value"
    assert bad_value.param == "payload[value]"
    unknown = _error(lambda: _send(client, "cus_missing", 1, None))  # type: ignore[arg-type]
    assert unknown.code == "meter_event_customer_not_found"
    no_meter = _error(lambda: _send(client, customer.id, 1, None,  # type: ignore[arg-type]
                                    event_name="nothing"))
    assert no_meter.code == "no_meter"
    no_customer = _error(lambda: client.v1.billing.meter_events.create(params={
        "event_name": "queries", "payload": {"value": "1"}}))
    assert no_customer.code == "meter_event_no_customer_defined"


def test_cancel_adjustment_removes_the_event_from_totals(client, sandbox) -> None:
    meter = _meter(client)
    customer = client.v1.customers.create()
    now = sandbox.now()
    _send(client, customer.id, 100, now - 60, identifier="keep")
    _send(client, customer.id, 40, now - 30, identifier="oops")
    adjustment = client.v1.billing.meter_event_adjustments.create(params={
        "event_name": "queries", "type": "cancel", "cancel": {"identifier": "oops"}})
    assert adjustment.object == "billing.meter_event_adjustment"
    assert (adjustment.type, adjustment.cancel.identifier) == ("cancel", "oops")
    assert usage_total(sandbox, meter.id, customer.id, now - DAY, now + 1) == 100
    missing = _error(lambda: client.v1.billing.meter_event_adjustments.create(params={
        "event_name": "queries", "type": "cancel", "cancel": {"identifier": "never-sent"}}))
    assert missing.param == "cancel[identifier]"


def test_event_summaries_by_day_and_by_hour(client, sandbox) -> None:
    meter = _meter(client)
    customer = client.v1.customers.create()
    day0 = _day_start(sandbox) - 3 * DAY
    _send(client, customer.id, 5, day0 + 1 * HOUR)
    _send(client, customer.id, 7, day0 + 1 * HOUR + 59)
    _send(client, customer.id, 11, day0 + 5 * HOUR)
    _send(client, customer.id, 13, day0 + DAY + 2 * HOUR)

    def summaries(**params):
        return client.v1.billing.meters.event_summaries.list(
            meter.id, params={"customer": customer.id, **params}).data

    whole = summaries(start_time=day0, end_time=day0 + 3 * DAY)
    assert [(s.start_time, s.end_time, s.aggregated_value) for s in whole] == [
        (day0, day0 + 3 * DAY, 36)]
    assert whole[0].object == "billing.meter_event_summary" and whole[0].meter == meter.id
    daily = summaries(start_time=day0, end_time=day0 + 3 * DAY, value_grouping_window="day")
    assert [(s.start_time, s.aggregated_value) for s in daily] == [(day0 + DAY, 13), (day0, 23)]
    hourly = summaries(start_time=day0, end_time=day0 + DAY, value_grouping_window="hour")
    assert [(s.start_time, s.end_time, s.aggregated_value) for s in hourly] == [
        (day0 + 5 * HOUR, day0 + 6 * HOUR, 11), (day0 + HOUR, day0 + 2 * HOUR, 12)]
    page = client.v1.billing.meters.event_summaries.list(meter.id, params={
        "customer": customer.id, "start_time": day0, "end_time": day0 + DAY,
        "value_grouping_window": "hour", "limit": 1, "starting_after": hourly[0].id})
    assert [s.start_time for s in page.data] == [day0 + HOUR]
    misaligned = _error(lambda: summaries(start_time=day0 + 60, end_time=day0 + DAY,
                                          value_grouping_window="day"))
    assert misaligned.param == "start_time"
    assert _error(lambda: summaries(start_time=day0 + 1, end_time=day0 + DAY)).param == (
        "start_time")


def test_v2_session_and_stream(client, sandbox) -> None:
    meter = _meter(client)
    customer = client.v1.customers.create()
    session = client.v2.billing.meter_event_session.create()
    assert session.authentication_token.startswith("ek_test_")
    assert stream_token_valid(sandbox, session.authentication_token)
    assert not stream_token_valid(sandbox, "ek_test_forged")
    single = client.v2.billing.meter_events.create(params={
        "event_name": "queries", "payload": {"stripe_customer_id": customer.id, "value": "2"}})
    assert single.object == "v2.billing.meter_event"
    body = json.dumps({"events": [
        {"event_name": "queries", "identifier": f"s{i}",
         "payload": {"stripe_customer_id": customer.id, "value": "3"}}
        for i in range(4)]})
    response = sandbox.handle("POST", "/v2/billing/meter_event_stream",
                              {"Authorization": "Bearer sk_test_x",
                               "Content-Type": "application/json"}, body)
    assert response.status == 200, response.body
    now = sandbox.now()
    assert usage_total(sandbox, meter.id, customer.id, now - DAY, now + 1) == 14
