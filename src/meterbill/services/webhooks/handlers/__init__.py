"""The table from Stripe event type to handler. Types not listed are stored and marked ignored.

A handler returns a short note of what it did, raises `UnknownCustomer` when no tenant has the
event's customer yet, and raises anything else to have the attempt retried.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..context import HandlerContext, InboxEvent
from .invoices import (
    handle_finalization_failed,
    handle_invoice_created,
    handle_invoice_finalized,
)
from .payment_methods import handle_payment_method_attached
from .payments import handle_payment_event
from .subscriptions import handle_subscription_event
from .trials import handle_trial_will_end

Handler = Callable[[HandlerContext, InboxEvent], str]

HANDLERS: Mapping[str, Handler] = {
    "invoice.paid": handle_payment_event,
    "invoice.payment_succeeded": handle_payment_event,
    "invoice.payment_failed": handle_payment_event,
    "invoice.voided": handle_payment_event,
    "invoice.marked_uncollectible": handle_payment_event,
    "invoice.overdue": handle_payment_event,
    "invoice.finalized": handle_invoice_finalized,
    "customer.subscription.created": handle_subscription_event,
    "customer.subscription.updated": handle_subscription_event,
    "customer.subscription.deleted": handle_subscription_event,
    "customer.subscription.trial_will_end": handle_trial_will_end,
    "invoice.created": handle_invoice_created,
    "invoice.finalization_failed": handle_finalization_failed,
    "payment_method.attached": handle_payment_method_attached,
}

__all__ = ["HANDLERS", "Handler"]
