"""Stripe's test clocks, as sandbox mode moves them (`services/sandbox/clock.py`).

`adapters/stripe_test_clocks.py` implements it on the Stripe client; every write takes an
idempotency key derived from our own ids."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class ClockRecord:
    id: str
    name: str | None
    frozen_time: datetime
    status: str  # ready, advancing, internal_failure


class TestClocksPort(Protocol):
    def list_clocks(self) -> list[ClockRecord]: ...
    def create_clock(self, *, name: str, frozen_time: datetime,
                     idempotency_key: str) -> ClockRecord: ...
    def retrieve_clock(self, clock_id: str) -> ClockRecord: ...
    def advance_clock(self, clock_id: str, frozen_time: datetime, *,
                      idempotency_key: str) -> ClockRecord: ...
