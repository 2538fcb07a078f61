"""Invoice items: one-off charges (and proration credits) waiting for the customer's next invoice.

An item is pending while `invoice` is null; a subscription renewal, an immediate subscription
update, or an invoice created with `pending_invoice_items_behavior=include` claims it. An item
may also be put straight on a draft invoice (`invoice=in_...`). Items on a finalized invoice can
no longer change.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import invoicing
from ..billing_math import exact_amount, to_cents
from ..engine import Call
from ..errors import InvalidRequestError, NotFoundError
from ..listing import created_filter, paginate
from ..router import Routes
from ..wire import as_bool, as_decimal, as_int, decimal_str, merge_metadata
from .common import deleted, nullable, require

if TYPE_CHECKING:
    from ..engine import Sandbox

routes = Routes()


# --- for other modules -------------------------------------------------------------------


def new_invoiceitem(sandbox: Sandbox, customer: dict[str, Any], at: int, *, amount: int,
                    currency: str, description: str | None, span: tuple[int, int],
                    quantity: Decimal | int = 1, price: dict[str, Any] | None = None,
                    unit_amount_decimal: Decimal | None = None,
                    subscription_id: str | None = None, subscription_item_id: str | None = None,
                    proration: bool = False, discountable: bool | None = None,
                    metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """An invoice item in Stripe's shape (not stored)."""
    q = Decimal(quantity)
    if unit_amount_decimal is None:
        unit_amount_decimal = Decimal(amount) / q if q else Decimal(amount)
    # Stripe keeps decimal amounts to at most 12 places.
    unit_amount_decimal = unit_amount_decimal.quantize(Decimal("1e-12")).normalize()
    parent = None
    if subscription_id is not None:
        parent = {"type": "subscription_details",
                  "subscription_details": {"subscription": subscription_id,
                                           "subscription_item": subscription_item_id}}
    return {
        "id": sandbox.store.new_id("ii"),
        "object": "invoiceitem",
        "amount": amount,
        "currency": currency,
        "customer": customer["id"],
        "customer_account": None,
        "date": at,
        "description": description,
        "discountable": (amount >= 0 and not proration) if discountable is None else discountable,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": dict(metadata or {}),
        "net_amount": amount,
        "parent": parent,
        "period": {"end": span[1], "start": span[0]},
        "pricing": {
            "type": "price_details",
            "price_details": {"price": price["id"], "product": price.get("product")}
            if price else None,
            "unit_amount_decimal": decimal_str(unit_amount_decimal),
        },
        "proration": proration,
        "quantity": int(q) if q == q.to_integral_value() else None,
        "quantity_decimal": decimal_str(q),
        "tax_rates": [],
        "test_clock": customer.get("test_clock"),
    }


def save_invoiceitem(sandbox: Sandbox, item: dict[str, Any], request: Call | None) -> None:
    sandbox.store.put(item)
    sandbox.emit("invoiceitem.created", item, request=request)


# --- validation ----------------------------------------------------------------------------


def _live_customer(call: Call, customer_id: Any) -> dict[str, Any]:
    customer = call.store.get("customer", customer_id) if isinstance(customer_id, str) else None
    if customer is None or customer.get("deleted"):
        raise InvalidRequestError(f"No such customer: '{customer_id}'", param="customer",
                                  code="resource_missing")
    return customer


def _draft_invoice(call: Call, invoice_id: str, customer_id: str) -> dict[str, Any]:
    invoice = call.store.get("invoice", invoice_id)
    if invoice is None:
        raise InvalidRequestError(f"No such invoice: '{invoice_id}'", param="invoice",
                                  code="resource_missing")
    if invoice["status"] != "draft":
        raise InvalidRequestError(
            f"You can only add invoice items to draft invoices; invoice {invoice_id} is "
            f"{invoice['status']}.", param="invoice", code="invoice_not_editable")
    if invoice["customer"] != customer_id:
        raise InvalidRequestError("The invoice belongs to a different customer.",
                                  param="invoice")
    return invoice


def _amounts(call: Call, p: dict[str, Any], current: dict[str, Any] | None
             ) -> tuple[int, str, Decimal, Decimal, dict[str, Any] | None]:
    """(amount, currency, quantity, unit amount, price) from the parameters."""
    quantity = Decimal(current["quantity_decimal"]) if current else Decimal(1)
    if p.get("quantity") not in (None, ""):
        quantity = Decimal(as_int(p["quantity"], "quantity"))
    if p.get("quantity_decimal") not in (None, ""):
        quantity = as_decimal(p["quantity_decimal"], "quantity_decimal")
    if quantity < 0:
        raise InvalidRequestError("Quantity must be non-negative.", param="quantity")
    currency = (current or {}).get("currency") or p.get("currency")
    pricing = p.get("pricing") if isinstance(p.get("pricing"), dict) else {}
    price_data = p.get("price_data") if isinstance(p.get("price_data"), dict) else None
    given = [k for k in ("amount", "unit_amount_decimal") if p.get(k) not in (None, "")]
    given += ["pricing[price]"] if pricing.get("price") else []
    given += ["price_data"] if price_data else []
    if len(given) > 1:
        raise InvalidRequestError(f"You may only specify one of these parameters: "
                                  f"{', '.join(given)}.", param=given[1])
    if pricing.get("price"):
        price = call.store.get("price", pricing["price"])
        if price is None:
            raise InvalidRequestError(f"No such price: '{pricing['price']}'",
                                      param="pricing[price]", code="resource_missing")
        unit = Decimal(price.get("unit_amount_decimal") or 0)
        return (to_cents(exact_amount(price, quantity)), price["currency"], quantity, unit,
                price)
    if price_data:
        unit = as_decimal(price_data.get("unit_amount_decimal")
                          or price_data.get("unit_amount") or 0, "price_data[unit_amount]")
        currency = str(require(price_data, "currency")).lower()
        return to_cents(unit * quantity), currency, quantity, unit, None
    if p.get("unit_amount_decimal") not in (None, ""):
        unit = as_decimal(p["unit_amount_decimal"], "unit_amount_decimal")
        if not currency:
            currency = require(p, "currency")
        return to_cents(unit * quantity), str(currency).lower(), quantity, unit, None
    if p.get("amount") not in (None, ""):
        amount = as_int(p["amount"], "amount")
        if not currency:
            currency = require(p, "currency")
        unit = Decimal(amount) / quantity if quantity else Decimal(amount)
        return amount, str(currency).lower(), quantity, unit, None
    if current is not None:
        unit = Decimal(current["pricing"]["unit_amount_decimal"] or 0)
        price = call.store.get("price", (current["pricing"].get("price_details") or {}).get(
            "price") or "")
        if price is not None:
            return (to_cents(exact_amount(price, quantity)), current["currency"], quantity,
                    unit, price)
        return to_cents(unit * quantity), current["currency"], quantity, unit, None
    raise InvalidRequestError("Missing required param: amount.", param="amount",
                              code="parameter_missing")


def _period(p: dict[str, Any], default: tuple[int, int]) -> tuple[int, int]:
    raw = p.get("period")
    if not isinstance(raw, dict):
        return default
    start = as_int(require(raw, "start"), "period[start]")
    end = as_int(require(raw, "end"), "period[end]")
    if end < start:
        raise InvalidRequestError("The period end must be on or after its start.",
                                  param="period[end]")
    return start, end


def _line_index(invoice: dict[str, Any], item_id: str) -> int | None:
    for i, line in enumerate(invoice["lines"]["data"]):
        parent = line.get("parent") or {}
        details = parent.get("invoice_item_details") or parent.get("subscription_item_details")
        if (details or {}).get("invoice_item") == item_id:
            return i
    return None


def _editable(call: Call, item: dict[str, Any], action: str) -> dict[str, Any] | None:
    """The draft invoice the item sits on (None when pending); refuse finalized ones."""
    if item["invoice"] is None:
        return None
    invoice = call.store.get("invoice", item["invoice"])
    if invoice is not None and invoice["status"] != "draft":
        raise InvalidRequestError(
            f"You cannot {action} an invoice item attached to an invoice that is no longer a "
            "draft.", code="invoice_not_editable")
    return invoice


def _get(call: Call, item_id: str) -> dict[str, Any]:
    item = call.store.get("invoiceitem", item_id)
    if item is None or item.get("deleted"):
        raise NotFoundError("invoiceitem", item_id)
    return item


# --- routes --------------------------------------------------------------------------------


@routes.post("/v1/invoiceitems")
def create(call: Call) -> dict[str, Any]:
    p = call.params
    customer = _live_customer(call, require(p, "customer"))
    at = call.now(customer.get("test_clock"))
    invoice = _draft_invoice(call, p["invoice"], customer["id"]) if p.get("invoice") else None
    sub_id = nullable(p.get("subscription"))
    if sub_id is not None:
        sub = call.store.get("subscription", sub_id)
        if sub is None or sub["customer"] != customer["id"]:
            raise InvalidRequestError(f"No such subscription: '{sub_id}'",
                                      param="subscription", code="resource_missing")
    amount, currency, quantity, unit, price = _amounts(call, p, None)
    description = nullable(p.get("description"))
    if description is None and price is not None:
        from ..subscription_state import product_name

        description = product_name(call.sandbox, price)
    discountable = as_bool(p["discountable"], "discountable") if "discountable" in p else None
    item = new_invoiceitem(
        call.sandbox, customer, at, amount=amount, currency=currency, description=description,
        span=_period(p, (at, at)), quantity=quantity, price=price, unit_amount_decimal=unit,
        subscription_id=sub_id, discountable=discountable,
        metadata=merge_metadata({}, p.get("metadata") or {}),
    )
    save_invoiceitem(call.sandbox, item, call)
    if invoice is not None:
        before = {"amount_due": invoice["amount_due"], "total": invoice["total"]}
        invoicing.claim_items(call.sandbox, invoice, [item])
        call.sandbox.emit("invoice.updated", invoice, before, request=call)
    return item


@routes.get("/v1/invoiceitems/{invoiceitem}")
def retrieve(call: Call, invoiceitem: str) -> dict[str, Any]:
    return _get(call, invoiceitem)


@routes.post("/v1/invoiceitems/{invoiceitem}")
def update(call: Call, invoiceitem: str) -> dict[str, Any]:
    item = _get(call, invoiceitem)
    p = call.params
    invoice = _editable(call, item, "update")
    amount, currency, quantity, unit, price = _amounts(call, p, item)
    span = _period(p, (item["period"]["start"], item["period"]["end"]))
    changes: dict[str, Any] = {
        "amount": amount, "net_amount": amount,
        "quantity": int(quantity) if quantity == quantity.to_integral_value() else None,
        "quantity_decimal": decimal_str(quantity),
        "period": {"end": span[1], "start": span[0]},
    }
    if price is not None or p.get("unit_amount_decimal") or p.get("amount") is not None:
        changes["pricing"] = dict(item["pricing"], unit_amount_decimal=decimal_str(unit))
    if "description" in p:
        changes["description"] = nullable(p["description"])
    if "discountable" in p:
        changes["discountable"] = as_bool(p["discountable"], "discountable")
    if "metadata" in p:
        changes["metadata"] = merge_metadata(item["metadata"], p["metadata"])
    previous = {k: item[k] for k, v in changes.items() if item[k] != v}
    if previous:
        item.update(changes)
        call.sandbox.emit("invoiceitem.updated", item, previous, request=call)
        if invoice is not None:
            index = _line_index(invoice, item["id"])
            line = invoicing.line_from_invoiceitem(call.sandbox, invoice, item)
            if index is None:
                invoice["lines"]["data"].insert(0, line)
            else:
                line["id"] = invoice["lines"]["data"][index]["id"]
                invoice["lines"]["data"][index] = line
            invoicing.recompute(invoice)
    return item


@routes.delete("/v1/invoiceitems/{invoiceitem}")
def delete(call: Call, invoiceitem: str) -> dict[str, Any]:
    item = _get(call, invoiceitem)
    invoice = _editable(call, item, "delete")
    if invoice is not None:
        index = _line_index(invoice, item["id"])
        if index is not None:
            del invoice["lines"]["data"][index]
            invoicing.recompute(invoice)
    item["deleted"] = True
    call.sandbox.emit("invoiceitem.deleted", item, request=call)
    call.store.delete("invoiceitem", item["id"])
    return deleted(item)


@routes.get("/v1/invoiceitems")
def list_(call: Call) -> dict[str, Any]:
    p = call.params
    in_range = created_filter(p, "created")
    pending = as_bool(p["pending"], "pending") if p.get("pending") not in (None, "") else None
    found = [
        item for item in call.store.all("invoiceitem")
        if (not p.get("customer") or item["customer"] == p["customer"])
        and (not p.get("invoice") or item["invoice"] == p["invoice"])
        and (pending is None or (item["invoice"] is None) == pending)
        and in_range({"created": item["date"]})
    ]
    return paginate(found, p, "/v1/invoiceitems")
