"""PaymentIntents behind invoices: retrieve only (the sandbox makes them, callers read them).

Stripe makes a PaymentIntent when it finalizes an invoice with an amount due (the invoice's
default `payments` entry names it). Every charge attempt confirms it: a failed one leaves the
reason in `last_payment_error` (`code`, `decline_code`, `message`, the payment method) and the
intent back in `requires_payment_method`; a successful one makes it `succeeded` and clears the
error; a card that needs 3-D Secure leaves it in `requires_action` (with `next_action`) until the
customer authenticates on the hosted invoice page; voiding the invoice cancels it. Dunning
reads the decline code to tell a failure that a retry can fix from one it cannot (a lost or
stolen card).
"""

from __future__ import annotations

from typing import Any

from .. import invoicing
from ..engine import Call, Sandbox
from ..listing import public
from ..router import Routes

routes = Routes()

DOC_URL = "https://stripe.com/docs/error-codes/"


def for_invoice(sandbox: Sandbox, invoice: dict[str, Any], intent_id: str, client_secret: str,
                at: int) -> dict[str, Any]:
    """The invoice's PaymentIntent, stored (`invoicing.finalize` calls it)."""
    intent: dict[str, Any] = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": invoice["amount_due"],
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": client_secret,
        "confirmation_method": "automatic",
        "created": at,
        "currency": invoice["currency"],
        "customer": invoice["customer"],
        "customer_account": None,
        "description": f"Subscription update ({invoice['id']})"
        if invoicing.subscription_of(invoice) else None,
        "allowed_payment_method_types": None,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_record": None,
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }
    return sandbox.store.put(intent)


def _of_invoice(sandbox: Sandbox, invoice: dict[str, Any]) -> dict[str, Any] | None:
    for payment in invoice["_payments"]["data"]:
        if payment.get("is_default"):
            intent_id = (payment.get("payment") or {}).get("payment_intent")
            return sandbox.store.get("payment_intent", intent_id) if intent_id else None
    return None


def record_attempt(sandbox: Sandbox, invoice: dict[str, Any], pm: dict[str, Any] | None,
                   failure: tuple[str, str | None, str] | None) -> None:
    """One charge attempt on the invoice's intent: succeeded, or failed with `failure`'s
    `(code, decline_code, message)`."""
    intent = _of_invoice(sandbox, invoice)
    if intent is None:
        return
    intent["payment_method"] = pm["id"] if pm else None
    if failure is None:
        intent.update(status="succeeded", amount_received=intent["amount"],
                      last_payment_error=None, next_action=None)
        return
    code, decline_code, message = failure
    error: dict[str, Any] = {
        "type": "card_error" if pm is not None else "invalid_request_error",
        "code": code,
        "decline_code": decline_code,
        "doc_url": DOC_URL + code,
        "message": message,
        "payment_method": public(pm) if pm is not None else None,  # the whole object
    }
    # Stripe leaves these out (rather than null) when there is none: no card, no decline code.
    error = {k: v for k, v in error.items() if v is not None or k not in ("decline_code",
                                                                         "payment_method")}
    intent.update(status="requires_payment_method", last_payment_error=error, next_action=None)


def record_requires_action(sandbox: Sandbox, invoice: dict[str, Any], pm: dict[str, Any]
                           ) -> dict[str, Any] | None:
    """The charge needs the cardholder to authenticate (3-D Secure): `requires_action`, and
    the next action points at the hosted invoice page, where the customer can do it."""
    intent = _of_invoice(sandbox, invoice)
    if intent is None:
        return None
    intent.update(status="requires_action", payment_method=pm["id"], last_payment_error=None,
                  next_action={"type": "use_stripe_sdk", "use_stripe_sdk": {
                      "type": "three_d_secure_redirect", "source": pm["id"],
                      "stripe_js": invoice.get("hosted_invoice_url")}})
    return intent


def cancel(sandbox: Sandbox, invoice: dict[str, Any], at: int) -> None:
    """The invoice was voided: its intent can no longer be paid."""
    intent = _of_invoice(sandbox, invoice)
    if intent is not None and intent["status"] != "succeeded":
        intent.update(status="canceled", canceled_at=at, cancellation_reason="void_invoice")


@routes.get("/v1/payment_intents/{intent}")
def retrieve(call: Call, intent: str) -> dict[str, Any]:
    return call.store.require("payment_intent", intent, "payment_intent", param="intent")
