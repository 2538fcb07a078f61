"""Stripe's customer billing portal: one short-lived session per click on an email's link.

Sessions expire minutes after they are made, so an email carries our own signed link
(`/billing/portal/{tenant}`) and the session is made when the customer opens it.
"""

from __future__ import annotations

import stripe
from stripe.params.billing_portal import SessionCreateParams

from .stripe_gateway import stripe_errors


class StripePortal:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    def create_session(self, customer_id: str, *, return_url: str | None,
                       idempotency_key: str) -> str:
        """The URL of a new portal session for `customer_id`."""
        params: SessionCreateParams = {"customer": customer_id}
        if return_url:
            params["return_url"] = return_url
        with stripe_errors("open the billing portal"):
            session = self.client.v1.billing_portal.sessions.create(
                params=params, options={"idempotency_key": idempotency_key})
        return str(session.url)
