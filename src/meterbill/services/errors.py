"""The exceptions services raise for one another and for entrypoints.

Rule errors that an API answer carries (`NotFound`, `Conflict`, ...) are `domain.errors`; the
exceptions a port's adapter raises live beside that port (`ports.webhooks.InvalidSignature`,
`ports.notify.DeliveryError`, ...). These are the services' own.
"""

from __future__ import annotations

from ..domain.errors import MeterbillError


class StaleTenant(Exception):
    """Another webhook handler committed a decision about the tenant after this one read it
    (webhooks/context.py): the processor runs the handler again on the new state."""


class UnknownCustomer(Exception):
    """The event names a Stripe customer no tenant has (yet): our own write may still be on its
    way, so the processor retries for a while, then parks the event."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(f"no tenant has Stripe customer {customer_id or '(none)'}")
        self.customer_id = customer_id


class LeaseLost(Exception):
    """Another worker took the inbox row while this one was handling it."""


class LinkRefused(MeterbillError):
    """A billing link's signature is wrong or it has expired (403: the page says what to do)."""

    status = 403
    default_code = "invalid_link"
