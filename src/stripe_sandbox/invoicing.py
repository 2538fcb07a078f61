"""The invoice lifecycle: build, finalize, charge, retry, void — shared by the endpoints, by
subscriptions and by the billing clock.

Stripe's automatic collection, as modelled here:
- a subscription invoice is made `draft` and finalized `draft_grace_seconds` later (one hour,
  `automatically_finalizes_at`); an invoice created through the API stays draft unless
  `auto_advance=true`;
- finalizing assigns the number and the hosted page / PDF links, applies the customer's balance,
  and (charge_automatically) charges the default payment method at once; a zero amount due is
  paid without a charge;
- a failed automatic charge sets `attempted`, `attempt_count` and `next_payment_attempt` from
  `config.retry_days`. Those are days after the FIRST failed attempt: with (3, 6, 7) and a first
  failure on day 1, the retries fail on days 4, 7 and 8. Like Stripe, any first attempt counts
  and afterwards only automatic retries move `attempt_count`; a manual `pay` that fails does not
  shift the schedule. After the last retry fails, `next_payment_attempt` is null, the invoice
  stays `open` and the subscription takes `config.after_final_failure`;
- the first invoice of an `incomplete` subscription is never retried (it expires after 23 h);
- a card that needs 3-D Secure (`card_catalog`, `authenticate`): the first invoice of a new
  subscription leaves its payment intent in `requires_action` and emits
  `invoice.payment_action_required` (the subscription stays `incomplete`); the customer
  authenticates and pays on the hosted invoice page (`invoice_pages`). Any other automatic
  charge is off-session, so the bank declines it with `authentication_required` (a failure,
  retried as any other) and `invoice.payment_action_required` tells the customer to act.

Invoices sent by email (`collection_method=send_invoice`), as Stripe documents them:
- finalizing gives them a `due_date` (`days_until_due` after creation, 30 days by default) and
  the hosted page where the customer pays; they are never charged automatically;
- `invoice.sent` is emitted by `POST /v1/invoices/{id}/send` (Stripe sends no email in test
  mode but still emits the event);
- when the due date passes unpaid, `invoice.overdue` is emitted once, in time order with the
  other billing steps (Stripe emits it from a Billing automation; the sandbox behaves as an
  account whose automation fires on the due date) and the subscription becomes `past_due`
  (Stripe: "becomes past_due when its invoice is not paid by the due date"); paying every
  overdue invoice makes it `active` again.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import schedule
from .billing_math import invoice_totals
from .errors import CardError, InvalidRequestError
from .listing import public

if TYPE_CHECKING:
    from .engine import Call, Sandbox

DAY = 86400
REQUIRES_ACTION = ("This payment requires additional user action before it can be completed "
                   "successfully. The customer can authenticate on the hosted invoice page.")


# --- building --------------------------------------------------------------------------------


def customer_snapshot(customer: dict[str, Any]) -> dict[str, Any]:
    return {
        "customer_address": customer.get("address"),
        "customer_email": customer.get("email"),
        "customer_name": customer.get("name"),
        "customer_phone": customer.get("phone"),
        "customer_shipping": customer.get("shipping"),
        "customer_tax_exempt": customer.get("tax_exempt") or "none",
    }


def blank_invoice(sandbox: Sandbox, customer: dict[str, Any], at: int, *, billing_reason: str,
                  subscription: dict[str, Any] | None = None, auto_advance: bool = True,
                  currency: str | None = None, period: tuple[int, int] | None = None,
                  collection_method: str = "charge_automatically") -> dict[str, Any]:
    """A draft invoice in Stripe's shape with no lines; not stored yet."""
    invoice_id = sandbox.store.new_id("in")
    start, end = period or (at, at)
    parent = None
    if subscription is not None:
        parent = {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {
                "metadata": dict(subscription.get("metadata") or {}),
                "subscription": subscription["id"],
            },
        }
    invoice: dict[str, Any] = {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Stripe Sandbox",
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": auto_advance,
        "automatic_tax": {"enabled": False, "liability": None, "status": None,
                          "disabled_reason": None, "provider": None},
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": collection_method,
        "created": at,
        "currency": currency or (subscription or {}).get("currency") or "usd",
        "custom_fields": None,
        "customer": customer["id"],
        "customer_account": None,
        **customer_snapshot(customer),
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {"object": "list", "data": [], "has_more": False,
                  "url": f"/v1/invoices/{invoice_id}/lines"},
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": parent,
        "payment_settings": {"default_mandate": None, "payment_method_options": None,
                             "payment_method_types": None},
        "period_end": end,
        "period_start": start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": {"amount_tax_display": None, "pdf": {"page_size": "auto"},
                      "template": None, "template_version": None},
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None,
                               "paid_at": None, "voided_at": None},
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": customer.get("test_clock"),
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
        # private: includable fields and retry bookkeeping
        "_payments": {"object": "list", "data": [], "has_more": False,
                      "url": f"/v1/invoice_payments?invoice={invoice_id}"},
        "_confirmation_secret": None,
        "_first_failed_at": None,
        "_overdue_at": None,  # when `invoice.overdue` was emitted (send_invoice only)
        "_no_retry": False,
        "_page_secret": secrets.token_urlsafe(12),
    }
    return invoice


def line_parent(subscription_id: str | None, item_id: str | None, invoiceitem_id: str | None,
                proration: bool) -> dict[str, Any]:
    """The endive `parent` of a line: a subscription item, or an invoice item."""
    details = {"credited_items": None}
    if item_id is not None:
        return {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": invoiceitem_id,
                "proration": proration,
                "proration_details": details,
                "subscription": subscription_id,
                "subscription_item": item_id,
            },
        }
    return {
        "type": "invoice_item_details",
        "subscription_item_details": None,
        "invoice_item_details": {
            "invoice_item": invoiceitem_id,
            "proration": proration,
            "proration_details": details,
            "subscription": subscription_id,
        },
    }


def new_line(sandbox: Sandbox, invoice: dict[str, Any] | None, *, amount: int, description: str,
             period: tuple[int, int], quantity: Any, pricing: dict[str, Any] | None,
             parent: dict[str, Any], subscription_id: str | None, currency: str,
             discountable: bool = True, metadata: dict[str, str] | None = None,
             preview: bool = False) -> dict[str, Any]:
    """An invoice line item (`il_...`; `il_tmp_...` on previews)."""
    from .wire import decimal_str

    if quantity is not None:
        quantity = Decimal(quantity)
    quantity_int = int(quantity) if quantity is not None and quantity == int(quantity) else None
    return {
        "id": sandbox.store.new_id("il_tmp" if preview else "il"),
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": description,
        "discount_amounts": [],
        "discountable": discountable,
        "discounts": [],
        "invoice": invoice["id"] if invoice else None,
        "livemode": False,
        "metadata": dict(metadata or {}),
        "parent": parent,
        "period": {"end": period[1], "start": period[0]},
        "pretax_credit_amounts": [],
        "pricing": pricing,
        "quantity": quantity_int,
        "quantity_decimal": decimal_str(quantity) if quantity is not None else None,
        "subscription": subscription_id,
        "subtotal": amount,
        "taxes": [],
    }


def line_from_invoiceitem(sandbox: Sandbox, invoice: dict[str, Any] | None,
                          item: dict[str, Any], preview: bool = False) -> dict[str, Any]:
    details = (item.get("parent") or {}).get("subscription_details") or {}
    sub_id = details.get("subscription")
    line = new_line(
        sandbox, invoice, amount=item["amount"], description=item.get("description") or "",
        period=(item["period"]["start"], item["period"]["end"]), quantity=item.get("quantity"),
        pricing=item.get("pricing"),
        parent=line_parent(sub_id, details.get("subscription_item"), item["id"],
                           bool(item.get("proration"))),
        subscription_id=sub_id, currency=item["currency"],
        discountable=bool(item.get("discountable")), metadata=item.get("metadata"),
        preview=preview,
    )
    return line


def add_lines(invoice: dict[str, Any], lines: list[dict[str, Any]]) -> None:
    invoice["lines"]["data"].extend(lines)
    recompute(invoice)


def recompute(invoice: dict[str, Any]) -> None:
    """Totals from the lines (no tax, no discounts); balance applies at finalization."""
    lines = invoice["lines"]["data"]
    totals = invoice_totals([line["amount"] for line in lines], invoice["starting_balance"])
    invoice["subtotal"] = invoice["subtotal_excluding_tax"] = totals["subtotal"]
    invoice["total"] = invoice["total_excluding_tax"] = totals["total"]
    if invoice["status"] == "draft":
        invoice["amount_due"] = totals["amount_due"]
        invoice["amount_remaining"] = totals["amount_due"]


def pending_items(sandbox: Sandbox, customer_id: str, subscription_id: str | None,
                  customer_level: bool) -> list[dict[str, Any]]:
    """Invoice items of `customer` waiting for an invoice: the subscription's own and, when
    `customer_level`, those tied to no subscription."""
    found = []
    for item in sandbox.store.all("invoiceitem"):
        if item["customer"] != customer_id or item["invoice"] is not None or item.get("deleted"):
            continue
        details = (item.get("parent") or {}).get("subscription_details") or {}
        owner = details.get("subscription")
        if owner == subscription_id and subscription_id is not None:
            found.append(item)
        elif owner is None and customer_level:
            found.append(item)
    return found


def claim_items(sandbox: Sandbox, invoice: dict[str, Any], items: list[dict[str, Any]]) -> None:
    """Put pending invoice items on `invoice`: after its other invoice-item lines, before the
    lines of subscription items."""
    lines = []
    for item in items:
        item["invoice"] = invoice["id"]
        lines.append(line_from_invoiceitem(sandbox, invoice, item))
    data = invoice["lines"]["data"]
    at = next((i for i, line in enumerate(data) if _is_item_line(line)), len(data))
    data[at:at] = lines
    recompute(invoice)


def _is_item_line(line: dict[str, Any]) -> bool:
    details = (line.get("parent") or {}).get("subscription_item_details")
    return details is not None and details.get("invoice_item") is None


def save_new(sandbox: Sandbox, invoice: dict[str, Any], request: Call | None = None) -> None:
    """Store a built draft, schedule its finalization, emit `invoice.created`."""
    if invoice["auto_advance"] and invoice["automatically_finalizes_at"] is None:
        invoice["automatically_finalizes_at"] = (
            invoice["created"] + sandbox.config.draft_grace_seconds
        )
    invoice["webhooks_delivered_at"] = invoice["created"]
    sandbox.store.put(invoice)
    sandbox.emit("invoice.created", invoice, request=request)
    schedule.touch(sandbox, invoice)


# --- finalizing and collecting ---------------------------------------------------------------


def _page_urls(sandbox: Sandbox, invoice: dict[str, Any]) -> tuple[str, str]:
    base = sandbox.config.public_url.rstrip("/")
    page = f"{base}/invoice/{invoice['id']}/{invoice['_page_secret']}"
    return page, page + "/pdf"


def repoint_pages(sandbox: Sandbox) -> int:
    """Make stored hosted-invoice links use the current `public_url`; how many moved.

    Stripe's links never change, but a sandbox restarted on another port would otherwise hand
    out (in invoices, the events carrying them and replayed idempotent answers) links to a port
    where nothing listens. Call with the engine's lock held."""
    moved: dict[str, str] = {}  # old page URL -> new page URL (the PDF is the page + "/pdf")
    for invoice in sandbox.store.all("invoice"):
        page = invoice.get("hosted_invoice_url")
        if not page or "_page_secret" not in invoice:
            continue
        new_page, new_pdf = _page_urls(sandbox, invoice)
        if page != new_page:
            moved[page] = new_page
            invoice["hosted_invoice_url"], invoice["invoice_pdf"] = new_page, new_pdf
    if not moved:
        return 0
    for event in sandbox.store.all("event"):
        obj = event.get("data", {}).get("object")
        if isinstance(obj, dict) and obj.get("hosted_invoice_url") in moved:
            obj["hosted_invoice_url"] = moved[obj["hosted_invoice_url"]]
            obj["invoice_pdf"] = obj["hosted_invoice_url"] + "/pdf"
    for key, (saved_at, fingerprint, response) in list(sandbox.idempotency.items()):
        if b"/invoice/" not in response.body:
            continue
        text = response.body.decode()
        for old, new in moved.items():
            text = text.replace(old, new)  # the PDF link starts with the page's
        sandbox.idempotency[key] = (saved_at, fingerprint,
                                    replace(response, body=text.encode()))
    return len(moved)


def finalize(sandbox: Sandbox, invoice: dict[str, Any], at: int,
             request: Call | None = None, collect: bool = True) -> dict[str, Any]:
    """draft → open (or → paid when nothing is due); then charge if automatic and `collect`."""
    customer = sandbox.store.get("customer", invoice["customer"])
    if customer is None or customer.get("deleted"):
        invoice["last_finalization_error"] = {
            "type": "invalid_request_error", "code": "resource_missing",
            "message": f"No such customer: '{invoice['customer']}'",
        }
        invoice["auto_advance"] = False
        invoice["automatically_finalizes_at"] = None
        sandbox.emit("invoice.finalization_failed", invoice, request=request)
        schedule.touch(sandbox, invoice)
        return invoice
    if subscription_of(invoice):
        from .subscription_state import refresh_usage

        refresh_usage(sandbox, invoice)
    sequence = int(customer.get("next_invoice_sequence") or 1)
    customer["next_invoice_sequence"] = sequence + 1
    invoice["number"] = invoice.get("number") or f"{customer['invoice_prefix']}-{sequence:04d}"
    balance = int(customer.get("balance") or 0)
    totals = invoice_totals([line["amount"] for line in invoice["lines"]["data"]], balance)
    if balance or totals["ending_balance"]:
        customer["balance"] = totals["ending_balance"]
    invoice["starting_balance"] = balance
    invoice["ending_balance"] = totals["ending_balance"]
    invoice["amount_due"] = invoice["amount_remaining"] = totals["amount_due"]
    invoice["status"] = "open"
    invoice["status_transitions"]["finalized_at"] = at
    invoice["effective_at"] = invoice["effective_at"] or at
    invoice["automatically_finalizes_at"] = None
    invoice["last_finalization_error"] = None
    invoice["hosted_invoice_url"], invoice["invoice_pdf"] = _page_urls(sandbox, invoice)
    if invoice["collection_method"] == "send_invoice" and invoice["due_date"] is None:
        invoice["due_date"] = at + 30 * DAY
    if invoice["amount_due"] > 0:
        pi = sandbox.store.new_id("pi")
        invoice["_confirmation_secret"] = {
            "client_secret": f"{pi}_secret_{secrets.token_urlsafe(18)}",
            "type": "payment_intent",
        }
        invoice["_payments"]["data"].append({
            "id": sandbox.store.new_id("inpay"), "object": "invoice_payment",
            "amount_paid": None, "amount_requested": invoice["amount_due"], "created": at,
            "currency": invoice["currency"], "invoice": invoice["id"], "is_default": True,
            "livemode": False, "payment": {"type": "payment_intent", "payment_intent": pi},
            "status": "open", "status_transitions": {"canceled_at": None, "paid_at": None},
        })
        from .resources.payment_intents import for_invoice

        for_invoice(sandbox, invoice, pi, invoice["_confirmation_secret"]["client_secret"], at)
    sandbox.emit("invoice.finalized", invoice, request=request)
    if invoice["amount_due"] == 0:
        mark_paid(sandbox, invoice, at, request)
    elif (collect and invoice["collection_method"] == "charge_automatically"
          and invoice["auto_advance"]):
        attempt(sandbox, invoice, at, request=request, automatic=True)
    schedule.touch(sandbox, invoice)
    return invoice


def payment_method_for(sandbox: Sandbox, invoice: dict[str, Any]) -> dict[str, Any] | None:
    """Stripe's order: the invoice's, the subscription's, then the customer's default."""
    candidates = [invoice.get("default_payment_method")]
    if subscription_of(invoice):
        sub = sandbox.store.get("subscription", subscription_of(invoice) or "") or {}
        candidates.append(sub.get("default_payment_method"))
    customer = sandbox.store.get("customer", invoice["customer"]) or {}
    candidates.append((customer.get("invoice_settings") or {}).get("default_payment_method"))
    for pm_id in candidates:
        if pm_id:
            pm = sandbox.store.get("payment_method", pm_id)
            if pm is not None:
                return pm
    return None


def mark_paid(sandbox: Sandbox, invoice: dict[str, Any], at: int, request: Call | None = None,
              out_of_band: bool = False) -> None:
    invoice["amount_paid"] = invoice["amount_due"]
    invoice["amount_remaining"] = 0
    invoice["status"] = "paid"
    invoice["status_transitions"]["paid_at"] = at
    invoice["next_payment_attempt"] = None
    invoice["auto_advance"] = False
    for payment in invoice["_payments"]["data"]:
        if payment["status"] == "open":
            payment.update(status="paid", amount_paid=invoice["amount_due"])
            payment["status_transitions"]["paid_at"] = at
    invoice["_paid_out_of_band"] = out_of_band
    sandbox.emit("invoice.paid", invoice, request=request)
    if not out_of_band:
        sandbox.emit("invoice.payment_succeeded", invoice, request=request)
    schedule.touch(sandbox, invoice)
    _tell_subscription(sandbox, invoice, at, request, paid=True, final=False)


def attempt(sandbox: Sandbox, invoice: dict[str, Any], at: int, *, request: Call | None = None,
            automatic: bool, pm: dict[str, Any] | None = None,
            raise_on_failure: bool = False, authenticated: bool = False) -> bool:
    """Charge an open invoice once. True when paid. A failure updates the retry schedule and
    emits `invoice.payment_failed`; with `raise_on_failure` it then raises Stripe's 402.
    `authenticated`: the cardholder has just passed 3-D Secure (the hosted invoice page)."""
    from .resources.payment_intents import record_attempt, record_requires_action
    from .resources.payment_methods import charge_failure, needs_authentication

    pm = pm if pm is not None else payment_method_for(sandbox, invoice)
    failure = charge_failure(pm)
    challenge = failure is None and not authenticated and needs_authentication(pm)
    if challenge and invoice["_no_retry"]:  # a new subscription's first invoice: on-session
        assert pm is not None
        record_requires_action(sandbox, invoice, pm)
        previous = {k: invoice[k] for k in ("attempt_count", "attempted")}
        invoice["attempted"] = True
        invoice["attempt_count"] = max(invoice["attempt_count"], 1)
        sandbox.emit("invoice.payment_action_required", invoice, request=request)
        changed = {k: v for k, v in previous.items() if invoice[k] != v}
        if changed:
            sandbox.emit("invoice.updated", invoice, changed, request=request)
        schedule.touch(sandbox, invoice)
        if raise_on_failure:
            raise CardError(REQUIRES_ACTION, code="invoice_payment_intent_requires_action")
        return False
    if challenge:  # off-session: the bank wants the cardholder, who is not there
        failure = ("authentication_required", "authentication_required",
                   "Your card was declined. This transaction requires authentication.")
    record_attempt(sandbox, invoice, pm, failure)
    previous = {k: invoice[k] for k in ("attempt_count", "attempted", "next_payment_attempt")}
    invoice["attempted"] = True
    if invoice["attempt_count"] == 0 or automatic:
        invoice["attempt_count"] += 1
    if failure is None:
        mark_paid(sandbox, invoice, at, request)
        return True
    if challenge:
        sandbox.emit("invoice.payment_action_required", invoice, request=request)
    code, decline_code, message = failure
    final = False
    if invoice["_first_failed_at"] is None:
        invoice["_first_failed_at"] = at
    if invoice["attempt_count"] == 1 or automatic:
        retry_at = _next_retry(sandbox, invoice)
        invoice["next_payment_attempt"] = retry_at
        final = retry_at is None and _retries_apply(invoice)
    sandbox.emit("invoice.payment_failed", invoice, request=request)
    changed = {k: v for k, v in previous.items() if invoice[k] != v}
    if changed:
        sandbox.emit("invoice.updated", invoice, changed, request=request)
    schedule.touch(sandbox, invoice)
    _tell_subscription(sandbox, invoice, at, request, paid=False, final=final)
    if raise_on_failure:
        # Stripe's card error carries the whole payment method, as its own endpoint shows it.
        extra = {"payment_method": public(pm)} if pm else {}
        if pm is None:
            raise InvalidRequestError(message, code=code)
        raise CardError(message, code=code, decline_code=decline_code, extra=extra)
    return False


def subscription_of(invoice: dict[str, Any]) -> str | None:
    """The invoice's subscription: `parent.subscription_details.subscription` (Stripe removed
    the top-level `invoice.subscription` in 2025-03-31.basil)."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    sub_id = details.get("subscription")
    return str(sub_id) if sub_id else None


def _retries_apply(invoice: dict[str, Any]) -> bool:
    return (not invoice["_no_retry"] and invoice["auto_advance"] and invoice["status"] == "open"
            and invoice["collection_method"] == "charge_automatically")


def _next_retry(sandbox: Sandbox, invoice: dict[str, Any]) -> int | None:
    """When the next automatic retry happens, counted from the first failure; None if none."""
    if not _retries_apply(invoice):
        return None
    days = tuple(sandbox.config.retry_days)
    done = invoice["attempt_count"] - 1  # retries already made
    if done >= len(days):
        return None
    return invoice["_first_failed_at"] + int(days[done]) * DAY


def _tell_subscription(sandbox: Sandbox, invoice: dict[str, Any], at: int,
                       request: Call | None, *, paid: bool, final: bool) -> None:
    if not subscription_of(invoice):
        return
    from . import subscription_state

    sub = sandbox.store.get("subscription", subscription_of(invoice) or "")
    if sub is None:
        return
    if paid:
        subscription_state.invoice_paid(sandbox, sub, invoice, at, request)
    else:
        subscription_state.payment_failed(sandbox, sub, invoice, at, request, final=final)


def void(sandbox: Sandbox, invoice: dict[str, Any], at: int, request: Call | None = None) -> None:
    invoice["status"] = "void"
    invoice["status_transitions"]["voided_at"] = at
    invoice["amount_remaining"] = 0
    invoice["next_payment_attempt"] = None
    invoice["auto_advance"] = False
    for payment in invoice["_payments"]["data"]:
        if payment["status"] == "open":
            payment["status"] = "canceled"
            payment["status_transitions"]["canceled_at"] = at
    release_items(sandbox, invoice, keep_on_invoice=True)
    from .resources.payment_intents import cancel

    cancel(sandbox, invoice, at)
    sandbox.emit("invoice.voided", invoice, request=request)
    schedule.touch(sandbox, invoice)


def mark_uncollectible(sandbox: Sandbox, invoice: dict[str, Any], at: int,
                       request: Call | None = None) -> None:
    invoice["status"] = "uncollectible"
    invoice["status_transitions"]["marked_uncollectible_at"] = at
    invoice["next_payment_attempt"] = None
    invoice["auto_advance"] = False
    sandbox.emit("invoice.marked_uncollectible", invoice, request=request)
    schedule.touch(sandbox, invoice)


def release_items(sandbox: Sandbox, invoice: dict[str, Any], keep_on_invoice: bool) -> None:
    """Invoice items of a deleted draft go back to pending; a voided invoice keeps them."""
    if keep_on_invoice:
        return
    for line in invoice["lines"]["data"]:
        parent = line.get("parent") or {}
        details = parent.get("invoice_item_details") or parent.get("subscription_item_details")
        item_id = (details or {}).get("invoice_item")
        item = sandbox.store.get("invoiceitem", item_id) if item_id else None
        if item is not None:
            item["invoice"] = None


def stop_collection(sandbox: Sandbox, subscription_id: str) -> None:
    """After a subscription is canceled, Stripe stops automatic collection of its invoices."""
    for invoice in sandbox.store.all("invoice"):
        if subscription_of(invoice) == subscription_id and invoice["status"] == "open":
            invoice["auto_advance"] = False
            invoice["next_payment_attempt"] = None
            schedule.touch(sandbox, invoice)


# --- the billing clock -----------------------------------------------------------------------


def overdue_at(invoice: dict[str, Any]) -> int | None:
    """When an open send_invoice invoice falls overdue, while `invoice.overdue` is not sent."""
    if (invoice["status"] != "open" or invoice["collection_method"] != "send_invoice"
            or invoice.get("due_date") is None or invoice.get("_overdue_at") is not None):
        return None
    return int(invoice["due_date"])


def is_overdue(invoice: dict[str, Any]) -> bool:
    return invoice["status"] == "open" and invoice.get("_overdue_at") is not None


def mark_overdue(sandbox: Sandbox, invoice: dict[str, Any], at: int) -> None:
    """The due date passed unpaid: `invoice.overdue`, and the subscription is `past_due`."""
    invoice["_overdue_at"] = at
    sandbox.emit("invoice.overdue", invoice)
    schedule.touch(sandbox, invoice)
    if subscription_of(invoice):
        from . import subscription_state

        sub = sandbox.store.get("subscription", subscription_of(invoice) or "")
        if sub is not None:
            subscription_state.invoice_overdue(sandbox, sub, invoice, at)


def next_due(invoice: dict[str, Any]) -> int | None:
    if invoice["status"] == "draft" and invoice["auto_advance"]:
        return invoice["automatically_finalizes_at"]
    if invoice["status"] != "open":
        return None
    due = [t for t in (invoice["next_payment_attempt"] if invoice["auto_advance"] else None,
                       overdue_at(invoice)) if t is not None]
    return min(due) if due else None


def process_due(sandbox: Sandbox, invoice: dict[str, Any], at: int) -> None:
    if invoice["status"] == "draft":
        finalize(sandbox, invoice, at)
    elif invoice["status"] == "open":
        overdue = overdue_at(invoice)
        if overdue is not None and overdue <= at:
            mark_overdue(sandbox, invoice, at)
        else:
            attempt(sandbox, invoice, at, automatic=True)


schedule.register("invoice", next_due, process_due)
