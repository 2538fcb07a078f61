"""The pure parts of usage sync (slots, timestamps, identifiers) and the 429 backoff."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import stripe

from meterbill.adapters.stripe_meters import RequestPacer, RetryPolicy, StripeMeters
from meterbill.domain import usage_slots as slots
from meterbill.domain.errors import StripeUnavailable

DAY = date(2026, 2, 5)
BOUNDARY = datetime(2026, 2, 5, 9, 17, 23, tzinfo=UTC)


def at(hour: int, minute: int = 0, second: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def test_a_day_is_cut_at_a_period_boundary_inside_it() -> None:
    midnight = at(0)
    assert slots.slots_of_day(DAY, [BOUNDARY, midnight, BOUNDARY + timedelta(days=40)]) == [
        slots.Slot(DAY, midnight, BOUNDARY),
        slots.Slot(DAY, BOUNDARY, midnight + timedelta(days=1))]
    assert slots.slots_of_day(DAY, []) == [slots.Slot(DAY, midnight, midnight + timedelta(1))]
    # `until` cuts too, and drops what lies after it.
    found = slots.slots_between(date(2026, 2, 4), DAY, [], until=BOUNDARY)
    assert [(s.day, s.start, s.end) for s in found] == [
        (date(2026, 2, 4), at(0, day=date(2026, 2, 4)), midnight), (DAY, midnight, BOUNDARY)]


def test_timestamps_stay_inside_the_slot_clear_of_the_boundary_minute() -> None:
    before, after = slots.slots_of_day(DAY, [BOUNDARY])
    later = at(23, 0)
    # A past slot: its last second outside the boundary's partial minute.
    assert slots.event_timestamp(before, later) == at(9, 16, 59)
    assert slots.event_timestamp(after, at(10, 0, 7)) == at(10, 0, 7)  # now, when inside
    # Now inside the partial minute after the boundary: the first whole minute (future, < 5 min).
    assert slots.event_timestamp(after, at(9, 17, 40)) == at(9, 18)
    # Not begun yet, or beyond Stripe's 35 days: no timestamp.
    assert slots.event_timestamp(after, at(8, 0)) is None
    assert slots.event_timestamp(before, at(9) + timedelta(days=36)) is None
    assert slots.expired(before, at(9) + timedelta(days=36))
    assert not slots.expired(after, at(8, 0))
    # The summary window of a period holds exactly these stamps.
    start, end = slots.summary_window(BOUNDARY - timedelta(days=31), BOUNDARY)
    assert (start.second, end) == (0, at(9, 17))
    assert start > BOUNDARY - timedelta(days=31) and at(9, 16, 59) < end


def test_identifiers_are_deterministic_and_fit_stripe() -> None:
    assert slots.identifier("acme", "queries", DAY, 3) == "acme:queries:2026-02-05:3"
    assert slots.idempotency_key("acme:queries:2026-02-05:3") == "usage:acme:queries:2026-02-05:3"
    long_id = "t" * 128
    made = slots.identifier(long_id, "queries", DAY, 12)
    assert len(made) <= 100 and made == slots.identifier(long_id, "queries", DAY, 12)
    assert made != slots.identifier("u" * 128, "queries", DAY, 12)


def test_backoff_honours_retry_after_and_jitters_otherwise() -> None:
    policy = RetryPolicy(base_seconds=1.0, max_seconds=8.0, random=lambda: 1.0)
    assert policy.delay(1, 2.5) == 2.5
    assert policy.delay(1, 100.0) == 8.0  # capped
    assert [policy.delay(n, None) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    low = RetryPolicy(base_seconds=1.0, random=lambda: 0.0)
    assert low.delay(3, None) == 2.0  # half of 4: the jitter's floor


class RateLimitedClient(stripe.HTTPClient):
    """Answers 429 `failures` times (with Retry-After when given), then a meter event."""

    name = "rate_limited"

    def __init__(self, failures: int, retry_after: str | None) -> None:
        super().__init__()
        self.failures = failures
        self.retry_after = retry_after
        self.calls = 0

    def request(self, method: str, url: str, headers: Any, post_data: Any = None, *,
                _usage: Any = None) -> tuple[str, int, dict[str, str]]:
        self.calls += 1
        if self.calls <= self.failures:
            body = {"error": {"type": "invalid_request_error", "code": "rate_limit",
                              "message": "Too many requests"}}
            headers_out = {"Retry-After": self.retry_after} if self.retry_after else {}
            return json.dumps(body), 429, headers_out
        return json.dumps({"object": "billing.meter_event", "identifier": "x"}), 200, {}

    def request_stream(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        pass


def send(meters: StripeMeters) -> str:
    return meters.send_meter_event(event_name="queries", customer_id="cus_1", value=3,
                                   value_key="value", timestamp=BOUNDARY, identifier="x",
                                   idempotency_key="usage:x")


@pytest.mark.parametrize("retry_after, expected", [("3", [3.0, 3.0]), (None, [0.5, 1.0])])
def test_429_is_retried_after_the_backoff(retry_after: str | None,
                                          expected: list[float]) -> None:
    http = RateLimitedClient(2, retry_after)
    slept: list[float] = []
    meters = StripeMeters(stripe.StripeClient("sk_test_x", http_client=http,
                                              max_network_retries=0),
                          RetryPolicy(base_seconds=0.5, sleep=slept.append, random=lambda: 1.0))
    assert send(meters) == "created"
    assert http.calls == 3 and slept == expected
    assert meters.stats.rate_limited == 2


def test_429_gives_up_after_max_attempts() -> None:
    http = RateLimitedClient(10, None)
    meters = StripeMeters(stripe.StripeClient("sk_test_x", http_client=http,
                                              max_network_retries=0),
                          RetryPolicy(max_attempts=3, sleep=lambda s: None))
    with pytest.raises(StripeUnavailable) as raised:
        send(meters)
    assert http.calls == 3 and raised.value.retryable


def test_the_pacer_spaces_requests() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    pacer = RequestPacer(rate=10.0, burst=1.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        pacer.acquire()
    assert now[0] == pytest.approx(0.4)  # the first at once, then one every 0.1 s
    assert all(w == pytest.approx(0.1) for w in waits)


def test_a_report_keeps_totals_for_all_and_details_for_a_bounded_number() -> None:
    from meterbill.services.usage.sync import SyncReport, TenantResult

    report = SyncReport(DAY, DAY, BOUNDARY, detail_limit=2)
    report.add(TenantResult("a", "sent", sent=5, calls=1))
    report.add(TenantResult("b", "unchanged"))
    report.add(TenantResult("c", "failed", calls=1, reason="Stripe refused"))
    assert [t.tenant_id for t in report.tenants] == ["a", "b"]
    assert [t.tenant_id for t in report.failed] == ["c"]  # failures are kept apart
    assert (report.omitted, report.sent, report.calls) == (1, 5, 2)
    assert report.counts == {"unchanged": 1, "skipped": 0, "sent": 1, "corrected": 0,
                             "failed": 1}
