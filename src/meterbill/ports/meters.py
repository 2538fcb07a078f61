"""What usage sync and reconciliation need from Stripe's Billing Meters, as a Protocol.

`adapters.stripe_meters.StripeMeters` implements it over stripe-python (v1 meter events, v1
event summaries), with the rate-limit backoff in one place. Errors come out as
`meterbill.domain.errors` types: `StripeUnavailable` (retryable: 429 after the backoff gave up,
5xx, no connection) leaves the outcome of a write unknown; `StripeInvalidRequest` (400/404)
means Stripe refused it and recorded nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

SendOutcome = Literal["created", "duplicate"]


class MeterEventsPort(Protocol):
    def send_meter_event(self, *, event_name: str, customer_id: str, value: int,
                         value_key: str, timestamp: datetime, identifier: str,
                         idempotency_key: str) -> SendOutcome:
        """Create one meter event. "duplicate": Stripe already has an event with this
        identifier (an earlier attempt of ours got through), so nothing new was recorded."""
        ...

    def meter_id(self, event_name: str) -> str:
        """The id of the meter for `event_name`; `NotFound` when Stripe has none."""
        ...

    def meter_usage(self, *, meter_id: str, customer_id: str, start: datetime,
                    end: datetime) -> int:
        """The meter's aggregated value for the customer over [start, end), both
        minute-aligned (Stripe's meter event summaries)."""
        ...
