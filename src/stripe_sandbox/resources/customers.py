"""Customers: create, retrieve, update, delete, list (`email`), search."""

from __future__ import annotations

import copy
import secrets
from typing import Any

from ..engine import Call
from ..errors import InvalidRequestError
from ..listing import created_filter, paginate, search_page
from ..router import Routes
from ..wire import merge_metadata
from .common import apply_updates, deleted, nullable
from .payment_methods import attach_to, check_attachable

routes = Routes()

_PLAIN_FIELDS = ("description", "email", "name", "phone", "preferred_locales", "shipping",
                 "tax_exempt", "metadata")
SEARCH_FIELDS = {"created", "email", "metadata", "name", "phone"}


def _address(value: Any) -> dict[str, Any]:
    keys = ("city", "country", "line1", "line2", "postal_code", "state")
    value = value if isinstance(value, dict) else {}
    return {k: value.get(k) or None for k in keys}


def _invoice_settings(current: dict[str, Any] | None, update: Any, call: Call,
                      customer_id: str | None) -> dict[str, Any]:
    settings = copy.deepcopy(current) if current else {
        "custom_fields": None,
        "default_payment_method": None,
        "footer": None,
        "rendering_options": None,
    }
    if not isinstance(update, dict):
        return settings
    if "default_payment_method" in update:
        pm_id = nullable(update["default_payment_method"])
        if pm_id is not None:
            pm = call.store.require("payment_method", pm_id, "PaymentMethod",
                                    "invoice_settings[default_payment_method]")
            if pm.get("customer") != customer_id:
                raise InvalidRequestError(
                    f"The customer does not have a payment method with the ID {pm_id}. The "
                    "payment method must be attached to the customer.",
                    param="invoice_settings[default_payment_method]",
                    code="resource_missing",
                )
        settings["default_payment_method"] = pm_id
    for name in ("footer", "custom_fields"):
        if name in update:
            settings[name] = nullable(update[name])
    return settings


@routes.post("/v1/customers")
def create(call: Call) -> dict[str, Any]:
    p = call.params
    clock_id = nullable(p.get("test_clock"))
    if clock_id:
        call.store.require("test_helpers.test_clock", clock_id, "test clock", "test_clock")
    customer_id = call.store.new_id("cus", 14)
    customer: dict[str, Any] = {
        "id": customer_id,
        "object": "customer",
        "address": _address(p.get("address")) if p.get("address") else None,
        "balance": int(p.get("balance", 0) or 0),
        "created": call.now(clock_id),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": nullable(p.get("description")),
        "discount": None,
        "email": nullable(p.get("email")),
        "invoice_prefix": secrets.token_hex(4).upper()[:8],
        "invoice_settings": None,
        "livemode": False,
        "metadata": merge_metadata({}, p.get("metadata") or {}),
        "name": nullable(p.get("name")),
        "next_invoice_sequence": 1,
        "phone": nullable(p.get("phone")),
        "preferred_locales": p.get("preferred_locales") or [],
        "shipping": nullable(p.get("shipping")),
        "tax_exempt": p.get("tax_exempt") or "none",
        "test_clock": clock_id,
    }
    customer["invoice_settings"] = _invoice_settings(None, None, call, customer_id)
    pm_id = nullable(p.get("payment_method"))
    settings = dict(p["invoice_settings"]) if isinstance(p.get("invoice_settings"), dict) else {}
    default_pm = nullable(settings.get("default_payment_method"))
    # Everything is checked before the customer exists: a declined card creates nothing.
    if pm_id:
        check_attachable(call, pm_id, customer, "payment_method")
    if default_pm and default_pm != pm_id:
        call.store.require("payment_method", default_pm, "PaymentMethod",
                           "invoice_settings[default_payment_method]")
        raise InvalidRequestError(
            f"The customer does not have a payment method with the ID {default_pm}. The "
            "payment method must be attached to the customer.",
            param="invoice_settings[default_payment_method]", code="resource_missing",
        )
    call.store.put(customer)
    if pm_id:  # attach at creation, as Stripe does
        attached = attach_to(call, pm_id, customer, param="payment_method")
        if default_pm == pm_id:  # `pm_card_visa` twice names the one method made from it
            settings["default_payment_method"] = attached["id"]
    if settings:
        customer["invoice_settings"] = _invoice_settings(
            customer["invoice_settings"], settings, call, customer_id
        )
    call.sandbox.emit("customer.created", customer, request=call)
    return customer


@routes.get("/v1/customers/search")
def search(call: Call) -> dict[str, Any]:
    live = [c for c in call.store.all("customer") if not c.get("deleted")]
    return search_page(live, call.params, "/v1/customers/search", SEARCH_FIELDS)


@routes.get("/v1/customers/{customer}")
def retrieve(call: Call, customer: str) -> dict[str, Any]:
    obj = call.store.get("customer", customer)
    if obj is None:
        raise InvalidRequestError(f"No such customer: '{customer}'", param="id",
                                  code="resource_missing", status=404)
    if obj.get("deleted"):
        return {"id": obj["id"], "object": "customer", "deleted": True}
    return obj


def _live(call: Call, customer_id: str) -> dict[str, Any]:
    obj = call.store.require("customer", customer_id, "customer")
    if obj.get("deleted"):
        raise InvalidRequestError(f"No such customer: '{customer_id}'", param="id",
                                  code="resource_missing", status=404)
    return obj


@routes.post("/v1/customers/{customer}")
def update(call: Call, customer: str) -> dict[str, Any]:
    obj = _live(call, customer)
    p = call.params
    previous = apply_updates(obj, p, _PLAIN_FIELDS)
    if "address" in p:
        previous["address"] = obj.get("address")
        obj["address"] = _address(p["address"]) if p["address"] != "" else None
    if "invoice_settings" in p:
        before = copy.deepcopy(obj["invoice_settings"])
        obj["invoice_settings"] = _invoice_settings(before, p["invoice_settings"], call, customer)
        if before != obj["invoice_settings"]:
            previous["invoice_settings"] = before
    if previous:
        call.sandbox.emit("customer.updated", obj, previous, request=call)
    return obj


@routes.delete("/v1/customers/{customer}")
def delete(call: Call, customer: str) -> dict[str, Any]:
    obj = _live(call, customer)
    for sub in call.store.all("subscription"):
        if sub["customer"] == customer and sub["status"] not in ("canceled", "incomplete_expired"):
            from .subscriptions import cancel_now

            cancel_now(call.sandbox, sub, request=call)
    snapshot = copy.deepcopy(obj)
    obj["deleted"] = True
    call.sandbox.emit("customer.deleted", snapshot, request=call)
    return deleted(obj)


@routes.get("/v1/customers")
def list_(call: Call) -> dict[str, Any]:
    p = call.params
    in_range = created_filter(p)
    email = p.get("email")
    clock = p.get("test_clock")
    found = [
        c for c in call.store.all("customer")
        if not c.get("deleted")
        and (email is None or c.get("email") == email)
        and (clock is None or c.get("test_clock") == clock)
        and in_range(c)
    ]
    return paginate(found, p, "/v1/customers")
