"""Payment methods (cards only): create, retrieve, update, attach, detach, list.

Test ids such as `pm_card_visa` are not objects: like Stripe, using one (attach, retrieve,
`customer.payment_method`) makes a NEW `pm_...` object from the test card behind it. Cards that
Stripe declines at attach time (4000000000000002 and friends) are refused with a 402 card error;
4000000000000341 attaches and then fails every charge (see `charge_failure`).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from ..engine import Call
from ..errors import CardError, InvalidRequestError, NotFoundError
from ..listing import paginate
from ..router import Routes
from ..wire import as_int, merge_metadata
from .card_catalog import CARDS, DISPLAY_BRANDS, CardSpec, fingerprint, luhn_valid, token_card
from .common import nullable, require

routes = Routes()

NO_PAYMENT_METHOD = (
    "This customer has no attached payment source or default payment method. Please consider "
    "adding a default payment method. For more information, visit "
    "https://stripe.com/docs/billing/subscriptions/payment-methods-setting#payment-method-priority."
)
_ADDRESS_KEYS = ("city", "country", "line1", "line2", "postal_code", "state")


# --- building objects --------------------------------------------------------------------


def _billing_details(current: dict[str, Any] | None, update: Any) -> dict[str, Any]:
    details: dict[str, Any] = copy.deepcopy(current) if current else {
        "address": {k: None for k in _ADDRESS_KEYS},
        "email": None,
        "name": None,
        "phone": None,
        "tax_id": None,
    }
    if not isinstance(update, dict):
        return details
    for key in ("email", "name", "phone", "tax_id"):
        if key in update:
            details[key] = nullable(update[key])
    address = update.get("address")
    if address == "":
        details["address"] = {k: None for k in _ADDRESS_KEYS}
    elif isinstance(address, dict):
        for key in _ADDRESS_KEYS:
            if key in address:
                details["address"][key] = nullable(address[key])
    return details


def _card_details(spec: CardSpec, exp_month: int, exp_year: int, cvc_check: str | None
                  ) -> dict[str, Any]:
    return {
        "brand": spec.brand,
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": cvc_check,
        },
        "country": spec.country,
        "display_brand": DISPLAY_BRANDS.get(spec.brand, spec.brand),
        "exp_month": exp_month,
        "exp_year": exp_year,
        "fingerprint": fingerprint(spec.number),
        "funding": spec.funding,
        "generated_from": None,
        "last4": spec.number[-4:],
        "networks": {"available": [spec.brand], "preferred": None},
        "regulated_status": "unregulated",
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
    }


def _new_pm(call: Call, spec: CardSpec, exp_month: int, exp_year: int, *, created: int,
            cvc_check: str | None = "pass", billing_details: Any = None,
            metadata: Any = None, allow_redisplay: str = "unspecified") -> dict[str, Any]:
    return {
        "id": call.store.new_id("pm"),
        "object": "payment_method",
        "allow_redisplay": allow_redisplay,
        "billing_details": _billing_details(None, billing_details),
        "card": _card_details(spec, exp_month, exp_year, cvc_check),
        "created": created,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": merge_metadata({}, metadata or {}),
        "type": "card",
        "_card_number": spec.number,  # private: which test card decides charges
    }


def _token_expiry(now: int) -> tuple[int, int]:
    """Test tokens carry an expiry one year ahead, as Stripe's do."""
    today = time.gmtime(now)
    return today.tm_mon, today.tm_year + 1


def _from_token(call: Call, token: str, created: int) -> dict[str, Any] | None:
    spec = token_card(token)
    if spec is None:
        return None
    month, year = _token_expiry(call.now())
    return _new_pm(call, spec, month, year, created=created, cvc_check="unchecked")


def _card_spec(number: Any) -> CardSpec:
    digits = str(number or "").replace(" ", "")
    if not luhn_valid(digits):
        raise CardError("Your card number is incorrect.", code="incorrect_number",
                        param="card[number]")
    spec = CARDS.get(digits)
    if spec is None:
        raise CardError(
            "Your card was declined. Your request was in test mode, but used a non test (live) "
            "card. For a list of valid test cards, visit: https://stripe.com/docs/testing.",
            code="card_declined", decline_code="test_mode_live_card", param="card[number]",
        )
    return spec


def _expiry(card: dict[str, Any], now: int) -> tuple[int, int]:
    month = as_int(require_card(card, "exp_month"), "card[exp_month]")
    year = as_int(require_card(card, "exp_year"), "card[exp_year]")
    if year < 100:  # two-digit years, as Stripe accepts them
        year += 2000
    today = time.gmtime(now)
    if not 1 <= month <= 12:
        raise CardError("Your card's expiration month is invalid.",
                        code="invalid_expiry_month", param="card[exp_month]")
    if year < today.tm_year:
        raise CardError("Your card's expiration year is invalid.",
                        code="invalid_expiry_year", param="card[exp_year]")
    if year == today.tm_year and month < today.tm_mon:
        raise CardError("Your card's expiration month is invalid.",
                        code="invalid_expiry_month", param="card[exp_month]")
    return month, year


def require_card(card: dict[str, Any], name: str) -> Any:
    value = card.get(name)
    if value in (None, ""):
        raise InvalidRequestError(f"Missing required param: card[{name}].",
                                  param=f"card[{name}]", code="parameter_missing")
    return value


def _no_such_pm(pm_id: str, param: str, status: int = 400) -> InvalidRequestError:
    return InvalidRequestError(f"No such PaymentMethod: '{pm_id}'", param=param,
                               code="resource_missing", status=status)


# --- functions other modules call --------------------------------------------------------


def materialize(call: Call, pm_id_or_token: str, param: str = "payment_method",
                created: int | None = None) -> dict[str, Any]:
    """The payment method named by an id, or a new one made from a test id (`pm_card_visa`)."""
    pm = call.store.get("payment_method", pm_id_or_token) if pm_id_or_token else None
    if pm is not None:
        return pm
    if isinstance(pm_id_or_token, str) and pm_id_or_token.startswith("pm_card_"):
        made = _from_token(call, pm_id_or_token, call.now() if created is None else created)
        if made is not None:
            return call.store.put(made)
    raise _no_such_pm(str(pm_id_or_token), param)


def _attachable(call: Call, pm_id_or_token: str, customer: dict[str, Any], param: str
                ) -> tuple[dict[str, Any], bool]:
    """The payment method to attach (new and unsaved for a test id) and whether it is new;
    raises every error attaching would raise, changing nothing."""
    pm = call.store.get("payment_method", pm_id_or_token)
    fresh = False
    if pm is None:
        if not (isinstance(pm_id_or_token, str) and pm_id_or_token.startswith("pm_card_")):
            raise _no_such_pm(str(pm_id_or_token), param)
        pm = _from_token(call, pm_id_or_token, call.now(customer.get("test_clock")))
        if pm is None:
            raise _no_such_pm(pm_id_or_token, param)
        fresh = True
    if pm.get("customer") and pm["customer"] != customer["id"]:
        raise InvalidRequestError(
            "The payment method you provided has already been attached to a customer.",
            param=param, code="payment_method_unexpected_state",
        )
    if pm.get("_detached"):
        raise InvalidRequestError(
            "This PaymentMethod was previously used without being attached to a Customer or was "
            "detached from a Customer, and may not be used again.",
            param=param, code="payment_method_unexpected_state",
        )
    spec = CARDS.get(pm.get("_card_number", ""))
    if spec is not None and spec.fails_on == "attach":
        raise CardError(spec.message, code=spec.code, decline_code=spec.decline_code)
    return pm, fresh


def check_attachable(call: Call, pm_id_or_token: str, customer: dict[str, Any], param: str
                     ) -> None:
    """Raise what `attach_to` would raise, without changing anything (validate-then-mutate)."""
    _attachable(call, pm_id_or_token, customer, param)


def attach_to(call: Call, pm_id_or_token: str, customer: dict[str, Any], param: str
              ) -> dict[str, Any]:
    """Attach a payment method (or a fresh one from a test id) to `customer`; emit the event.

    Raises a 402 CardError for cards Stripe declines at attach time, before changing anything.
    """
    pm, fresh = _attachable(call, pm_id_or_token, customer, param)
    if pm.get("customer") == customer["id"]:
        return pm  # attaching twice to the same customer changes nothing
    if fresh:
        call.store.put(pm)
    pm["customer"] = customer["id"]
    call.sandbox.emit("payment_method.attached", pm, request=call)
    return pm


def charge_failure(pm: dict[str, Any] | None) -> tuple[str, str | None, str] | None:
    """`(code, decline_code, message)` if charging `pm` fails, else None.

    No payment method at all is a failure too (decline_code None), as Stripe fails an automatic
    charge when the customer has nothing to charge.
    """
    if pm is None:
        return ("resource_missing", None, NO_PAYMENT_METHOD)
    spec = CARDS.get(pm.get("_card_number", ""))
    return spec.failure if spec is not None else None


def needs_authentication(pm: dict[str, Any] | None) -> bool:
    """Whether charging `pm` needs the cardholder's 3-D Secure authentication first."""
    spec = CARDS.get(pm.get("_card_number", "")) if pm is not None else None
    return spec is not None and spec.authenticate


def detach(call: Call, pm: dict[str, Any]) -> dict[str, Any]:
    """Detach `pm`; clear it as its customer's default payment method (customer.updated)."""
    customer_id = pm.get("customer")
    if not customer_id:
        raise InvalidRequestError(
            "The payment method you provided is not attached to a customer so detachment is "
            "impossible.",
            param="payment_method", code="payment_method_unexpected_state",
        )
    pm["customer"] = None
    pm["_detached"] = True
    call.sandbox.emit("payment_method.detached", pm, {"customer": customer_id}, request=call)
    customer = call.store.get("customer", customer_id)
    settings = (customer or {}).get("invoice_settings") or {}
    if customer is not None and settings.get("default_payment_method") == pm["id"]:
        before = dict(settings)  # Stripe's previous attributes hold the whole nested object
        settings["default_payment_method"] = None
        call.sandbox.emit("customer.updated", customer, {"invoice_settings": before},
                          request=call)
    return pm


# --- routes ------------------------------------------------------------------------------


@routes.post("/v1/payment_methods")
def create(call: Call) -> dict[str, Any]:
    p = call.params
    pm_type = require(p, "type")
    if pm_type != "card":
        raise InvalidRequestError(
            f"The sandbox supports only payment methods of type `card` (got `{pm_type}`).",
            param="type",
        )
    card = p.get("card")
    if not isinstance(card, dict) or not card:
        raise InvalidRequestError("Missing required param: card.", param="card",
                                  code="parameter_missing")
    details = p.get("billing_details")
    if details not in (None, "") and not isinstance(details, dict):
        raise InvalidRequestError("Invalid object", param="billing_details",
                                  code="parameter_invalid_object")
    allow_redisplay = p.get("allow_redisplay") or "unspecified"
    if card.get("token"):
        token = str(card["token"])
        spec = token_card(token) if token.startswith("tok_") else None
        if spec is None:
            raise InvalidRequestError(f"No such token: '{token}'", param="card[token]",
                                      code="resource_missing")
        month, year = _token_expiry(call.now())
        cvc_check: str | None = "unchecked"
    else:
        spec = _card_spec(require_card(card, "number"))
        month, year = _expiry(card, call.now())
        cvc_check = "unchecked" if card.get("cvc") else None
    pm = _new_pm(call, spec, month, year, created=call.now(), cvc_check=cvc_check,
                 billing_details=details, metadata=p.get("metadata"),
                 allow_redisplay=allow_redisplay)
    return call.store.put(pm)


@routes.get("/v1/payment_methods/{payment_method}")
def retrieve(call: Call, payment_method: str) -> dict[str, Any]:
    pm = call.store.get("payment_method", payment_method)
    if pm is None and payment_method.startswith("pm_card_"):
        return materialize(call, payment_method, param="payment_method")
    if pm is None:
        raise _no_such_pm(payment_method, "payment_method", status=404)
    return pm


@routes.post("/v1/payment_methods/{payment_method}")
def update(call: Call, payment_method: str) -> dict[str, Any]:
    pm = call.store.get("payment_method", payment_method)
    if pm is None:
        raise _no_such_pm(payment_method, "payment_method", status=404)
    if not pm.get("customer"):
        raise InvalidRequestError(
            "You must save this PaymentMethod to a customer before you can update it.",
            param="payment_method",
        )
    p = call.params
    previous: dict[str, Any] = {}
    if "metadata" in p:
        merged = merge_metadata(pm["metadata"], p["metadata"])
        if merged != pm["metadata"]:
            previous["metadata"] = pm["metadata"]
            pm["metadata"] = merged
    if "billing_details" in p:
        merged = _billing_details(pm["billing_details"], p["billing_details"])
        if merged != pm["billing_details"]:
            previous["billing_details"] = pm["billing_details"]
            pm["billing_details"] = merged
    if "allow_redisplay" in p and p["allow_redisplay"] != pm["allow_redisplay"]:
        previous["allow_redisplay"] = pm["allow_redisplay"]
        pm["allow_redisplay"] = p["allow_redisplay"]
    card = p.get("card")
    if isinstance(card, dict) and ("exp_month" in card or "exp_year" in card):
        merged_card = {"exp_month": pm["card"]["exp_month"], "exp_year": pm["card"]["exp_year"]}
        merged_card.update({k: card[k] for k in ("exp_month", "exp_year") if k in card})
        month, year = _expiry(merged_card, call.now())
        if (month, year) != (pm["card"]["exp_month"], pm["card"]["exp_year"]):
            previous["card"] = {"exp_month": pm["card"]["exp_month"],
                                "exp_year": pm["card"]["exp_year"]}
            pm["card"]["exp_month"], pm["card"]["exp_year"] = month, year
    if previous:
        call.sandbox.emit("payment_method.updated", pm, previous, request=call)
    return pm


@routes.post("/v1/payment_methods/{payment_method}/attach")
def attach(call: Call, payment_method: str) -> dict[str, Any]:
    customer_id = require(call.params, "customer")
    customer = call.store.get("customer", customer_id)
    if customer is None or customer.get("deleted"):
        raise InvalidRequestError(f"No such customer: '{customer_id}'", param="customer",
                                  code="resource_missing")
    known = call.store.get("payment_method", payment_method) is not None
    if not known and not (payment_method.startswith("pm_card_") and token_card(payment_method)):
        raise _no_such_pm(payment_method, "payment_method", status=404)
    return attach_to(call, payment_method, customer, param="payment_method")


@routes.post("/v1/payment_methods/{payment_method}/detach")
def detach_route(call: Call, payment_method: str) -> dict[str, Any]:
    pm = call.store.get("payment_method", payment_method)
    if pm is None:
        raise _no_such_pm(payment_method, "payment_method", status=404)
    return detach(call, pm)


def _matching(call: Call, customer_id: str | None, params: dict[str, Any]
              ) -> list[dict[str, Any]]:
    pm_type = params.get("type")
    redisplay = params.get("allow_redisplay")
    return [
        pm for pm in call.store.all("payment_method")
        if (customer_id is None or pm.get("customer") == customer_id)
        and (pm_type in (None, "") or pm["type"] == pm_type)
        and (redisplay in (None, "") or pm["allow_redisplay"] == redisplay)
    ]


@routes.get("/v1/payment_methods")
def list_(call: Call) -> dict[str, Any]:
    customer_id = call.params.get("customer")
    if customer_id and call.store.get("customer", customer_id) is None:
        raise InvalidRequestError(f"No such customer: '{customer_id}'", param="customer",
                                  code="resource_missing")
    found = _matching(call, customer_id or None, call.params)
    return paginate(found, call.params, "/v1/payment_methods")


@routes.get("/v1/customers/{customer}/payment_methods")
def list_for_customer(call: Call, customer: str) -> dict[str, Any]:
    if call.store.get("customer", customer) is None:
        raise NotFoundError("customer", customer)
    found = _matching(call, customer, call.params)
    return paginate(found, call.params, f"/v1/customers/{customer}/payment_methods")


@routes.get("/v1/customers/{customer}/payment_methods/{payment_method}")
def retrieve_for_customer(call: Call, customer: str, payment_method: str) -> dict[str, Any]:
    if call.store.get("customer", customer) is None:
        raise NotFoundError("customer", customer)
    pm = call.store.get("payment_method", payment_method)
    if pm is None or pm.get("customer") != customer:
        raise _no_such_pm(payment_method, "payment_method", status=404)
    return pm
