"""Invoices: create (manual), retrieve, update, delete drafts, finalize, pay, send, void,
mark_uncollectible, list, search, lines, and `create_preview`; plus the hosted page and PDF.

The lifecycle (finalization, charging, retries) is in `invoicing`; subscription invoices are
made by the billing clock (`subscription_state`).
"""

from __future__ import annotations

import copy
from typing import Any

from .. import invoice_pages, invoicing, schedule
from .. import subscription_changes as changes
from .. import subscription_state as state
from ..engine import Call
from ..errors import InvalidRequestError, NotFoundError
from ..listing import created_filter, paginate, search_page
from ..router import Routes
from ..wire import as_bool, as_int, merge_metadata
from .common import nullable, require

routes = Routes()
pages = [invoice_pages.serve]

SEARCH_FIELDS = {"created", "currency", "customer", "metadata", "number", "receipt_number",
                 "status", "subscription", "total"}
_UNSUPPORTED = ("discounts", "shipping_cost", "shipping_details", "from_invoice",
                "transfer_data", "application_fee_amount", "default_tax_rates")
_OPEN_EDITABLE = {"metadata", "auto_advance", "default_payment_method", "description", "footer",
                  "expand", "custom_fields"}


def _get(call: Call, invoice_id: str) -> dict[str, Any]:
    invoice = call.store.get("invoice", invoice_id)
    if invoice is None:
        raise NotFoundError("invoice", invoice_id)
    return invoice


def _now(call: Call, invoice: dict[str, Any]) -> int:
    return call.now(invoice.get("test_clock"))


def _refuse_unsupported(p: dict[str, Any]) -> None:
    for name in _UNSUPPORTED:
        if p.get(name) not in (None, "", [], {}):
            raise InvalidRequestError(f"The sandbox does not support `{name}` on invoices.",
                                      param=name)
    tax = p.get("automatic_tax")
    if isinstance(tax, dict) and as_bool(tax.get("enabled", False), "automatic_tax[enabled]"):
        raise InvalidRequestError("The sandbox does not compute tax (`automatic_tax`).",
                                  param="automatic_tax[enabled]")


def _customer_pm(call: Call, pm_id: Any, customer_id: str, param: str) -> dict[str, Any]:
    pm = call.store.get("payment_method", pm_id) if isinstance(pm_id, str) else None
    if pm is None:
        raise InvalidRequestError(f"No such PaymentMethod: '{pm_id}'", param=param,
                                  code="resource_missing")
    if pm.get("customer") != customer_id:
        raise InvalidRequestError(
            f"The PaymentMethod {pm_id} does not belong to the Customer {customer_id}. Please "
            "use a PaymentMethod attached to this customer.", param=param,
            code="payment_method_invalid_parameter")
    return pm


def _collection(invoice: dict[str, Any], p: dict[str, Any], at: int) -> None:
    if "collection_method" in p:
        if p["collection_method"] not in ("charge_automatically", "send_invoice"):
            raise InvalidRequestError("Invalid collection_method: must be one of "
                                      "charge_automatically or send_invoice",
                                      param="collection_method")
        invoice["collection_method"] = p["collection_method"]
    if p.get("due_date") not in (None, ""):
        invoice["due_date"] = as_int(p["due_date"], "due_date")
    elif p.get("days_until_due") not in (None, ""):
        invoice["due_date"] = at + as_int(p["days_until_due"], "days_until_due") * 86400
    if invoice["collection_method"] == "charge_automatically" and (
        p.get("due_date") or p.get("days_until_due")
    ):
        raise InvalidRequestError("Invoices with `collection_method=charge_automatically` "
                                  "cannot have a due date.", param="due_date")


# --- create, read, update, delete ------------------------------------------------------------


@routes.post("/v1/invoices")
def create(call: Call) -> dict[str, Any]:
    p = call.params
    _refuse_unsupported(p)
    customer = call.store.get("customer", require(p, "customer"))
    if customer is None or customer.get("deleted"):
        raise InvalidRequestError(f"No such customer: '{p['customer']}'", param="customer",
                                  code="resource_missing")
    at = call.now(customer.get("test_clock"))
    behavior = p.get("pending_invoice_items_behavior") or "exclude"
    if behavior not in ("include", "exclude"):
        raise InvalidRequestError("Invalid pending_invoice_items_behavior: must be one of "
                                  "include or exclude", param="pending_invoice_items_behavior")
    sub = None
    if p.get("subscription"):
        sub = call.store.get("subscription", p["subscription"])
        if sub is None or sub["customer"] != customer["id"]:
            raise InvalidRequestError(f"No such subscription: '{p['subscription']}'",
                                      param="subscription", code="resource_missing")
    pm = None
    if p.get("default_payment_method"):
        pm = _customer_pm(call, p["default_payment_method"], customer["id"],
                          "default_payment_method")
    auto_advance = as_bool(p.get("auto_advance", False), "auto_advance")
    invoice = invoicing.blank_invoice(call.sandbox, customer, at, billing_reason="manual",
                                      auto_advance=auto_advance,
                                      currency=str(p.get("currency") or "usd").lower())
    _collection(invoice, p, at)
    invoice.update(
        description=nullable(p.get("description")), footer=nullable(p.get("footer")),
        metadata=merge_metadata({}, p.get("metadata") or {}),
        statement_descriptor=nullable(p.get("statement_descriptor")),
        default_payment_method=pm["id"] if pm else None,
        custom_fields=nullable(p.get("custom_fields")) or None,
    )
    if p.get("number"):
        invoice["number"] = str(p["number"])
    if p.get("automatically_finalizes_at") not in (None, ""):
        invoice["automatically_finalizes_at"] = as_int(p["automatically_finalizes_at"],
                                                       "automatically_finalizes_at")
    if behavior == "include":
        items = invoicing.pending_items(call.sandbox, customer["id"],
                                        sub["id"] if sub else None, customer_level=sub is None)
        invoicing.claim_items(call.sandbox, invoice, items)
    invoicing.save_new(call.sandbox, invoice, call)
    return invoice


@routes.get("/v1/invoices/search")
def search(call: Call) -> dict[str, Any]:
    # `subscription:'sub_...'` searches the parent's subscription (no top-level key since basil).
    invoices = {inv["id"]: inv for inv in call.store.all("invoice")}
    views = [dict(inv, subscription=invoicing.subscription_of(inv)) for inv in invoices.values()]
    page = search_page(views, call.params, "/v1/invoices/search", SEARCH_FIELDS)
    page["data"] = [invoices[view["id"]] for view in page["data"]]
    return page


@routes.get("/v1/invoices/{invoice}")
def retrieve(call: Call, invoice: str) -> dict[str, Any]:
    return _get(call, invoice)


@routes.post("/v1/invoices/{invoice}")
def update(call: Call, invoice: str) -> dict[str, Any]:
    obj = _get(call, invoice)
    p = call.params
    _refuse_unsupported(p)
    if obj["status"] != "draft":
        extra = set(p) - _OPEN_EDITABLE
        if extra:
            raise InvalidRequestError(
                f"Finalized invoices can't be updated in this way (`{sorted(extra)[0]}`).",
                param=sorted(extra)[0], code="invoice_not_editable")
        if obj["status"] in ("paid", "void") and "auto_advance" in p:
            raise InvalidRequestError("auto_advance cannot be changed on a paid or void "
                                      "invoice.", param="auto_advance")
    pm = None
    if p.get("default_payment_method"):
        pm = _customer_pm(call, p["default_payment_method"], obj["customer"],
                          "default_payment_method")
    at = _now(call, obj)
    before = copy.deepcopy({k: v for k, v in obj.items() if not k.startswith("_")})
    for name in ("description", "footer", "statement_descriptor", "custom_fields"):
        if name in p:
            obj[name] = nullable(p[name])
    if "metadata" in p:
        obj["metadata"] = merge_metadata(obj["metadata"], p["metadata"])
    if pm is not None:
        obj["default_payment_method"] = pm["id"]
    if obj["status"] == "draft":
        _collection(obj, p, at)
        if p.get("automatically_finalizes_at") not in (None, ""):
            obj["automatically_finalizes_at"] = as_int(p["automatically_finalizes_at"],
                                                       "automatically_finalizes_at")
    if "auto_advance" in p:
        obj["auto_advance"] = as_bool(p["auto_advance"], "auto_advance")
        if obj["status"] == "draft" and obj["auto_advance"] and not obj[
            "automatically_finalizes_at"
        ]:
            obj["automatically_finalizes_at"] = at + call.sandbox.config.draft_grace_seconds
        if obj["status"] == "draft" and not obj["auto_advance"]:
            # Stripe: null when the draft is not scheduled to finalize; it waits for a finalize.
            obj["automatically_finalizes_at"] = None
        if obj["status"] == "open" and not obj["auto_advance"]:
            obj["next_payment_attempt"] = None
    previous = {k: v for k, v in before.items() if obj.get(k) != v}
    if previous:
        call.sandbox.emit("invoice.updated", obj, previous, request=call)
    schedule.touch(call.sandbox, obj)
    return obj


@routes.delete("/v1/invoices/{invoice}")
def delete(call: Call, invoice: str) -> dict[str, Any]:
    obj = _get(call, invoice)
    if obj["status"] != "draft":
        raise InvalidRequestError("You can only delete draft invoices.",
                                  code="invoice_not_editable")
    invoicing.release_items(call.sandbox, obj, keep_on_invoice=False)
    obj["auto_advance"] = False
    call.sandbox.emit("invoice.deleted", obj, request=call)
    call.store.delete("invoice", obj["id"])
    return {"id": obj["id"], "object": "invoice", "deleted": True}


@routes.get("/v1/invoices")
def list_(call: Call) -> dict[str, Any]:
    """Stripe's filters: customer, subscription, status, collection_method, created and
    due_date (exact or gt/gte/lt/lte; an invoice without a due date, one charged
    automatically, matches no due_date filter). `customer_account` (customers as v2 Accounts)
    is refused: the sandbox has no Accounts."""
    p = call.params
    if p.get("customer_account"):
        raise InvalidRequestError("The sandbox lists invoices by `customer` only, not "
                                  "`customer_account`.", param="customer_account")
    in_range = created_filter(p)
    due = created_filter(p, "due_date")
    found = [
        inv for inv in call.store.all("invoice")
        if (not p.get("customer") or inv["customer"] == p["customer"])
        and (not p.get("subscription") or invoicing.subscription_of(inv) == p["subscription"])
        and (not p.get("status") or inv["status"] == p["status"])
        and (not p.get("collection_method") or inv["collection_method"] == p["collection_method"])
        and in_range(inv)
        and (not p.get("due_date") or (inv.get("due_date") is not None and due(inv)))
    ]
    return paginate(found, p, "/v1/invoices")


@routes.get("/v1/invoices/{invoice}/lines")
def lines(call: Call, invoice: str) -> dict[str, Any]:
    obj = _get(call, invoice)
    # `paginate` lists newest first; reversed in, the invoice's own line order comes out.
    return paginate(list(reversed(obj["lines"]["data"])), call.params,
                    f"/v1/invoices/{invoice}/lines")


# --- state changes ---------------------------------------------------------------------------


@routes.post("/v1/invoices/{invoice}/finalize")
def finalize(call: Call, invoice: str) -> dict[str, Any]:
    obj = _get(call, invoice)
    if obj["status"] != "draft":
        raise InvalidRequestError(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
            code="invoice_not_editable")
    if "auto_advance" in call.params:
        obj["auto_advance"] = as_bool(call.params["auto_advance"], "auto_advance")
    invoicing.finalize(call.sandbox, obj, _now(call, obj), call, collect=obj["auto_advance"])
    return obj


@routes.post("/v1/invoices/{invoice}/pay")
def pay(call: Call, invoice: str) -> dict[str, Any]:
    obj = _get(call, invoice)
    p = call.params
    if obj["status"] == "paid":
        raise InvalidRequestError("Invoice is already paid.", code="invoice_already_paid")
    if obj["status"] == "void":
        raise InvalidRequestError("This invoice has been voided and cannot be paid.",
                                  code="invoice_not_editable")
    pm = None
    if p.get("payment_method"):
        pm = _customer_pm(call, p["payment_method"], obj["customer"], "payment_method")
    out_of_band = as_bool(p.get("paid_out_of_band", False), "paid_out_of_band")
    at = _now(call, obj)
    if obj["status"] == "draft":
        invoicing.finalize(call.sandbox, obj, at, call, collect=False)
        if obj["status"] == "paid":
            return obj
    if out_of_band:
        invoicing.mark_paid(call.sandbox, obj, at, call, out_of_band=True)
        return obj
    if pm is None:
        pm = invoicing.payment_method_for(call.sandbox, obj)
    if pm is None:
        from .payment_methods import NO_PAYMENT_METHOD

        raise InvalidRequestError(NO_PAYMENT_METHOD, code="resource_missing")
    invoicing.attempt(call.sandbox, obj, at, request=call, automatic=False, pm=pm,
                      raise_on_failure=True)
    return obj


@routes.post("/v1/invoices/{invoice}/send")
def send(call: Call, invoice: str) -> dict[str, Any]:
    """Email the invoice now: `invoice.sent` (in test mode Stripe sends no email, only the
    event). Only finalized send_invoice invoices can be sent."""
    obj = _get(call, invoice)
    if obj["collection_method"] != "send_invoice":
        raise InvalidRequestError("You can only manually send an invoice if its collection "
                                  "method is 'send_invoice'.", code="invoice_not_editable")
    if obj["status"] in ("draft", "void"):
        raise InvalidRequestError(f"You can't send an invoice that is {obj['status']}; "
                                  "finalize it first.", code="invoice_not_editable")
    call.sandbox.emit("invoice.sent", obj, request=call)
    return obj


@routes.post("/v1/invoices/{invoice}/void")
def void(call: Call, invoice: str) -> dict[str, Any]:
    obj = _get(call, invoice)
    if obj["status"] not in ("open", "uncollectible"):
        raise InvalidRequestError(
            f"You can only void an open or uncollectible invoice; this one is {obj['status']}.",
            code="invoice_not_editable")
    invoicing.void(call.sandbox, obj, _now(call, obj), call)
    return obj


@routes.post("/v1/invoices/{invoice}/mark_uncollectible")
def mark_uncollectible(call: Call, invoice: str) -> dict[str, Any]:
    obj = _get(call, invoice)
    if obj["status"] != "open":
        raise InvalidRequestError(
            f"You can only mark an open invoice uncollectible; this one is {obj['status']}.",
            code="invoice_not_editable")
    invoicing.mark_uncollectible(call.sandbox, obj, _now(call, obj), call)
    return obj


# --- previews --------------------------------------------------------------------------------


@routes.post("/v1/invoices/create_preview")
def create_preview(call: Call) -> dict[str, Any]:
    """The invoice a subscription (with optional changes) or a customer would get next."""
    p = call.params
    details = p.get("subscription_details") if isinstance(p.get("subscription_details"),
                                                          dict) else {}
    for name in ("cancel_now", "pause", "resume_at", "schedule", "schedule_details"):
        if details.get(name) not in (None, "") or p.get(name) not in (None, ""):
            raise InvalidRequestError(f"The sandbox does not preview `{name}`.", param=name)
    sub = None
    if p.get("subscription"):
        sub = call.store.get("subscription", p["subscription"])
        if sub is None:
            raise InvalidRequestError(f"No such subscription: '{p['subscription']}'",
                                      param="subscription", code="resource_missing")
    customer_id = sub["customer"] if sub else p.get("customer")
    if sub and p.get("customer") not in (None, "", sub["customer"]):
        raise InvalidRequestError("The subscription does not belong to this customer.",
                                  param="customer")
    customer = call.store.get("customer", customer_id) if customer_id else None
    if customer is None or customer.get("deleted"):
        raise InvalidRequestError(f"No such customer: '{customer_id}'", param="customer",
                                  code="resource_missing")
    at = call.now(customer.get("test_clock"))
    if sub is not None:
        invoice = _preview_subscription(call, sub, customer, details, at)
    elif details.get("items"):
        invoice = _preview_new_subscription(call, customer, details, at)
    else:
        invoice = invoicing.blank_invoice(call.sandbox, customer, at, billing_reason="upcoming",
                                          auto_advance=True)
        pending = invoicing.pending_items(call.sandbox, customer["id"], None, True)
        invoicing.add_lines(invoice, [invoicing.line_from_invoiceitem(
            call.sandbox, invoice, item, preview=True) for item in pending])
    _preview_extra_items(call, invoice, p.get("invoice_items"))
    if not invoice["lines"]["data"]:
        raise InvalidRequestError(f"No upcoming invoices for customer: {customer['id']}",
                                  code="invoice_upcoming_none", status=404)
    balance = int(customer.get("balance") or 0)
    invoice["starting_balance"] = balance
    invoicing.recompute(invoice)
    invoice["id"] = "upcoming_" + invoice["id"]
    invoice["lines"]["url"] = f"/v1/invoices/{invoice['id']}/lines"
    for line in invoice["lines"]["data"]:
        line["invoice"] = invoice["id"]
    return invoice


def _preview_subscription(call: Call, sub: dict[str, Any], customer: dict[str, Any],
                          details: dict[str, Any], at: int) -> dict[str, Any]:
    param = "subscription_details[items]"
    raw_items = details.get("items")
    plan = changes.parse_items(call.sandbox, sub, raw_items or [], param)
    plan.at = as_int(details["proration_date"], "subscription_details[proration_date]") \
        if details.get("proration_date") not in (None, "") else at
    behavior = details.get("proration_behavior") or "create_prorations"
    from .subscriptions import anchor_choice

    anchor = anchor_choice(details.get("billing_cycle_anchor"),
                           "subscription_details[billing_cycle_anchor]")
    plan.reset_anchor = anchor == "now" and sub["status"] != "trialing"
    changed = bool(plan.removed) or any(
        t.source is None or t.source["price"]["id"] != t.price["id"]
        or t.source["quantity"] != t.quantity for t in plan.targets)
    if changed or plan.reset_anchor:
        changes.plan_prorations(call.sandbox, sub, plan, behavior)
    plan.invoice_now = plan.reset_anchor or (behavior == "always_invoice" and changed)
    start, end = state.period(sub)
    created = at if plan.invoice_now else (
        int(sub["trial_end"]) if sub["status"] == "trialing" else end)
    reason = "subscription_update" if plan.invoice_now else "upcoming"
    invoice = invoicing.blank_invoice(call.sandbox, customer, created, billing_reason=reason,
                                      subscription=sub, period=(start, min(end, created)))
    if sub["status"] in state.ENDED:
        raise InvalidRequestError(f"No upcoming invoices for customer: {customer['id']}",
                                  code="invoice_upcoming_none", status=404)
    changes.preview_lines(call.sandbox, sub, plan, invoice)
    if not plan.invoice_now:
        invoice["automatically_finalizes_at"] = created + call.sandbox.config.draft_grace_seconds
        invoice["next_payment_attempt"] = invoice["automatically_finalizes_at"]
    return invoice


def _preview_new_subscription(call: Call, customer: dict[str, Any], details: dict[str, Any],
                              at: int) -> dict[str, Any]:
    from .. import schedule as sched
    from .subscriptions import _new_subscription

    plan = changes.parse_items(call.sandbox, None, details["items"],
                               "subscription_details[items]")
    sub = _new_subscription(call, customer, at, plan.targets)
    state.set_items(sub, [state.new_item(call.sandbox, sub["id"], t.price, t.quantity, at,
                                         item_id=t.item_id) for t in plan.targets])
    unit, count = state.interval(sub)
    state.set_period(sub, at, sched.boundary(at, unit, count, 1))
    invoice = invoicing.blank_invoice(call.sandbox, customer, at,
                                      billing_reason="subscription_create", subscription=sub)
    invoice["parent"]["subscription_details"]["subscription"] = None
    pending = invoicing.pending_items(call.sandbox, customer["id"], None, True)
    lines = [invoicing.line_from_invoiceitem(call.sandbox, invoice, i, preview=True)
             for i in pending]
    lines += state.first_period_lines(call.sandbox, sub, invoice, at, True, preview=True)
    for line in lines:
        line["subscription"] = None
    invoicing.add_lines(invoice, lines)
    return invoice


def _preview_extra_items(call: Call, invoice: dict[str, Any], raw: Any) -> None:
    from ..wire import as_list

    extra = []
    for i, entry in enumerate(as_list(raw, "invoice_items")):
        if not isinstance(entry, dict):
            continue
        name = f"invoice_items[{i}]"
        if entry.get("price"):
            price = call.store.get("price", entry["price"])
            if price is None:
                raise InvalidRequestError(f"No such price: '{entry['price']}'",
                                          param=f"{name}[price]", code="resource_missing")
            quantity = as_int(entry.get("quantity", 1), f"{name}[quantity]")
            from ..billing_math import line_amount

            amount, currency, pricing = line_amount(price, quantity), price["currency"], \
                state.pricing(price)
            text = entry.get("description") or state.product_name(call.sandbox, price)
        else:
            amount = as_int(require(entry, "amount"), f"{name}[amount]")
            currency, quantity, pricing = invoice["currency"], 1, None
            text = entry.get("description") or ""
        extra.append(invoicing.new_line(
            call.sandbox, invoice, amount=amount, description=text,
            period=(invoice["created"], invoice["created"]), quantity=quantity, pricing=pricing,
            parent=invoicing.line_parent(None, None, None, False), subscription_id=None,
            currency=currency, preview=True))
    if extra:
        invoicing.add_lines(invoice, extra)
