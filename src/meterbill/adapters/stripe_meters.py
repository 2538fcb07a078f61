"""Stripe Billing Meters for usage sync: `ports.meters.MeterEventsPort`.

Rate limits are handled here and nowhere else. stripe-python does not retry a genuine 429 (it
retries only when Stripe sends `Stripe-Should-Retry: true`, as for lock timeouts), and Stripe
asks integrators to back off with jitter. So every call:

1. waits for a token of the `RequestPacer` (a token bucket shared by all sync threads), which
   keeps the process under the configured requests per second so that 429s stay rare;
2. on a 429 sleeps `Retry-After` when Stripe sends one, else a jittered exponential delay
   (`base * 2**attempt`, capped, times a random factor in [0.5, 1.0]), and tries again, up to
   `max_attempts` tries in all; then gives up with `StripeUnavailable`.

Retrying a meter event create is safe: it carries the same identifier and idempotency key, and
a 429 is answered before Stripe runs the request.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import stripe

from ..domain.errors import NotFound
from ..ports.meters import SendOutcome
from .stripe_gateway import stripe_errors
from .token_bucket import TokenBucket

# The meter's customer mapping key, as `StripeGateway.create_meter` configures it.
CUSTOMER_KEY = "stripe_customer_id"

T = TypeVar("T")


@dataclass
class RetryPolicy:
    max_attempts: int = 6
    base_seconds: float = 0.5
    max_seconds: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before try `attempt + 1` (attempt counts from 1)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_seconds)
        backoff = min(self.base_seconds * 2.0 ** (attempt - 1), self.max_seconds)
        return backoff * (0.5 + 0.5 * self.random())


@dataclass
class RequestPacer:
    """At most `rate` requests per second across threads (bursts of up to `burst`)."""

    rate: float
    burst: float = 1.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _bucket: TokenBucket | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self.clock()
                if self._bucket is None:
                    self._bucket = TokenBucket(self.rate, self.burst, now)
                wait = self._bucket.take(now)
            if wait == 0.0:
                return
            self.sleep(wait)


@dataclass
class MeterCallStats:
    requests: int = 0
    rate_limited: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, requests: int = 0, rate_limited: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.rate_limited += rate_limited


def retry_after_seconds(error: stripe.StripeError) -> float | None:
    headers: Any = error.headers or {}
    value = None
    if isinstance(headers, Mapping):
        value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date: fall back to our own backoff


class StripeMeters:
    def __init__(self, client: stripe.StripeClient, retry: RetryPolicy | None = None,
                 pacer: RequestPacer | None = None) -> None:
        self.client = client
        self.retry = retry or RetryPolicy()
        self.pacer = pacer
        self.stats = MeterCallStats()
        self._meter_ids: dict[str, str] = {}
        self._meter_lock = threading.Lock()

    def _call(self, action: str, request: Callable[[], T]) -> T:
        """`request()` with pacing and the 429 backoff; Stripe errors translated."""
        attempt = 0
        while True:
            attempt += 1
            if self.pacer is not None:
                self.pacer.acquire()
            self.stats.add(requests=1)
            try:
                return request()
            except stripe.RateLimitError as error:
                self.stats.add(rate_limited=1)
                if attempt >= self.retry.max_attempts:
                    with stripe_errors(action):
                        raise
                wait = self.retry.delay(attempt, retry_after_seconds(error))
                self.retry.sleep(wait)
            except stripe.StripeError:
                with stripe_errors(action):
                    raise

    def send_meter_event(self, *, event_name: str, customer_id: str, value: int,
                         value_key: str, timestamp: datetime, identifier: str,
                         idempotency_key: str) -> SendOutcome:
        params: Any = {
            "event_name": event_name,
            "identifier": identifier,
            "timestamp": int(timestamp.timestamp()),
            "payload": {CUSTOMER_KEY: customer_id, value_key: str(value)},
        }

        def create() -> SendOutcome:
            try:
                self.client.v1.billing.meter_events.create(
                    params=params, options={"idempotency_key": idempotency_key})
            except stripe.InvalidRequestError as error:
                if _duplicate_identifier(error):
                    return "duplicate"
                raise
            return "created"

        return self._call(f"report usage {identifier}", create)

    def meter_id(self, event_name: str) -> str:
        with self._meter_lock:
            if event_name not in self._meter_ids:
                meters = self._call("list billing meters", lambda: [
                    (str(m.event_name), str(m.id), m.status) for m in
                    self.client.v1.billing.meters.list(params={"limit": 100}).auto_paging_iter()])
                for name, found_id, status in meters:
                    if status == "active":
                        self._meter_ids.setdefault(name, found_id)
            found = self._meter_ids.get(event_name)
        if found is None:
            raise NotFound(f"Stripe has no active billing meter for event name {event_name!r}: "
                           "run `meterbill catalog sync`.", code="meter_missing")
        return found

    def meter_usage(self, *, meter_id: str, customer_id: str, start: datetime,
                    end: datetime) -> int:
        params: Any = {"customer": customer_id, "start_time": int(start.timestamp()),
                       "end_time": int(end.timestamp())}

        def total() -> int:
            page = self.client.v1.billing.meters.event_summaries.list(meter_id, params=params)
            return sum(int(s.aggregated_value) for s in page.auto_paging_iter())

        return self._call(f"read meter usage of customer {customer_id}", total)


def _duplicate_identifier(error: stripe.InvalidRequestError) -> bool:
    text = (error.user_message or str(error)).lower()
    return getattr(error, "param", None) == "identifier" and "already exists" in text
