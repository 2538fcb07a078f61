"""`ports.test_clocks.TestClocksPort` over a `stripe.StripeClient`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import stripe

from ..ports.test_clocks import ClockRecord
from . import stripe_records as records
from .stripe_gateway import stripe_errors


def _record(obj: Any) -> ClockRecord:
    data = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    frozen = records.timestamp(data.get("frozen_time"))
    assert frozen is not None
    return ClockRecord(id=str(data["id"]), name=data.get("name"), frozen_time=frozen,
                       status=str(data.get("status") or "ready"))


class StripeTestClocks:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.clocks = client.v1.test_helpers.test_clocks

    def list_clocks(self) -> list[ClockRecord]:
        with stripe_errors("list test clocks"):
            page = self.clocks.list(params={"limit": 100})
            return [_record(clock) for clock in page.auto_paging_iter()]

    def create_clock(self, *, name: str, frozen_time: datetime,
                     idempotency_key: str) -> ClockRecord:
        with stripe_errors("create a test clock"):
            return _record(self.clocks.create(
                params={"frozen_time": int(frozen_time.timestamp()), "name": name},
                options={"idempotency_key": idempotency_key}))

    def retrieve_clock(self, clock_id: str) -> ClockRecord:
        with stripe_errors(f"retrieve test clock {clock_id}"):
            return _record(self.clocks.retrieve(clock_id))

    def advance_clock(self, clock_id: str, frozen_time: datetime, *,
                      idempotency_key: str) -> ClockRecord:
        with stripe_errors(f"advance test clock {clock_id}"):
            return _record(self.clocks.advance(
                clock_id, params={"frozen_time": int(frozen_time.timestamp())},
                options={"idempotency_key": idempotency_key}))
