"""What usage repair needs from Stripe beyond sending meter events (ports/meters.py): cancel an
event it sent (Stripe allows it for 24 hours after receiving it) and leave a signed amount on
the customer's next invoice."""

from __future__ import annotations

from typing import Protocol


class UsageRepairPort(Protocol):
    def cancel_meter_event(self, *, event_name: str, identifier: str,
                           idempotency_key: str) -> bool:
        """Cancel the event sent with `identifier`; False when Stripe has none or no longer
        allows it (older than 24 hours)."""
        ...

    def add_invoice_adjustment(self, *, customer_id: str, amount: int, currency: str,
                               description: str, idempotency_key: str) -> str:
        """A pending invoice item of `amount` cents (negative: a credit) on the customer's
        next invoice; its id."""
        ...
