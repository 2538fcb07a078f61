"""`UsageRepairPort` on stripe-python: meter event cancellations and invoice items."""

from __future__ import annotations

from typing import Any

import stripe

from .stripe_gateway import stripe_errors


class StripeUsageRepair:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    def cancel_meter_event(self, *, event_name: str, identifier: str,
                           idempotency_key: str) -> bool:
        params: Any = {"event_name": event_name, "type": "cancel",
                       "cancel": {"identifier": identifier}}
        try:
            self.client.v1.billing.meter_event_adjustments.create(
                params=params, options={"idempotency_key": idempotency_key})
        except stripe.InvalidRequestError as error:
            # No such event (it never reached Stripe), or received over 24 hours ago.
            if error.code == "resource_missing" or "24 hours" in str(error.user_message):
                return False
            with stripe_errors(f"cancel meter event {identifier}"):
                raise
        except stripe.StripeError:
            with stripe_errors(f"cancel meter event {identifier}"):
                raise
        return True

    def add_invoice_adjustment(self, *, customer_id: str, amount: int, currency: str,
                               description: str, idempotency_key: str) -> str:
        params: Any = {"customer": customer_id, "amount": amount, "currency": currency,
                       "description": description}
        with stripe_errors(f"add a usage adjustment for {customer_id}"):
            item = self.client.v1.invoice_items.create(
                params=params, options={"idempotency_key": idempotency_key})
        return str(item.id)
