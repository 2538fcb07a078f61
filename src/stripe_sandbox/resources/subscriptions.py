"""Subscriptions and subscription items: create, retrieve, update, cancel, list, search.

The endpoints validate everything (items, prices, payment method, and — for
`error_if_incomplete` — whether the charge would succeed) before they write anything; the
lifecycle itself lives in `subscription_state` (time) and `subscription_changes` (updates).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import invoicing, schedule
from .. import subscription_changes as changes
from .. import subscription_state as state
from ..engine import Call
from ..errors import CardError, InvalidRequestError, NotFoundError
from ..listing import created_filter, paginate, search_page
from ..router import Routes
from ..wire import as_bool, as_int, merge_metadata
from .common import nullable, require

if TYPE_CHECKING:
    from ..engine import Sandbox

routes = Routes()

SEARCH_FIELDS = {"created", "metadata", "status"}
DAY = 86400
MAX_TRIAL_DAYS = 730
PAYMENT_BEHAVIORS = ("allow_incomplete", "default_incomplete", "error_if_incomplete",
                     "pending_if_incomplete")
PRORATION_BEHAVIORS = ("always_invoice", "create_prorations", "none")
_INCOMPLETE_EDITABLE = {"metadata", "default_payment_method", "default_source", "description",
                        "expand", "payment_settings", "cancellation_details"}


def cancel_now(sandbox: Sandbox, sub: dict[str, Any], request: Call | None = None) -> None:
    """Cancel at once without a final invoice or prorations (customer deletion does this)."""
    if sub["status"] in state.ENDED:
        return
    state.end_subscription(sandbox, sub, sandbox.now(sub.get("test_clock")),
                           reason="cancellation_requested", request=request)


# --- helpers ---------------------------------------------------------------------------------


def _refuse_unsupported(p: dict[str, Any]) -> None:
    # The parameters the sandbox does not implement at all are refused by the engine
    # (`unimplemented.REFUSED`); here, values of implemented ones that it does not model.
    tax = p.get("automatic_tax")
    if isinstance(tax, dict) and as_bool(tax.get("enabled", False), "automatic_tax[enabled]"):
        raise InvalidRequestError("The sandbox does not compute tax (`automatic_tax`).",
                                  param="automatic_tax[enabled]")


def _get(call: Call, sub_id: str) -> dict[str, Any]:
    sub = call.store.get("subscription", sub_id)
    if sub is None:
        raise NotFoundError("subscription", sub_id)
    return sub


def _customer(call: Call, customer_id: Any) -> dict[str, Any]:
    customer = call.store.get("customer", customer_id) if isinstance(customer_id, str) else None
    if customer is None or customer.get("deleted"):
        raise InvalidRequestError(f"No such customer: '{customer_id}'", param="customer",
                                  code="resource_missing")
    return customer


def _attached_pm(call: Call, pm_id: Any, customer_id: str, param: str) -> str:
    pm = call.store.get("payment_method", pm_id) if isinstance(pm_id, str) else None
    if pm is None or pm.get("customer") != customer_id:
        raise InvalidRequestError(
            f"The customer does not have a payment method with the ID {pm_id}. The payment "
            "method must be attached to the customer.", param=param, code="resource_missing")
    return pm["id"]


def _choice(p: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = p.get(name) or default
    if value not in allowed:
        raise InvalidRequestError(f"Invalid {name}: must be one of {', '.join(allowed)}",
                                  param=name)
    return str(value)


def _precheck_charge(call: Call, customer: dict[str, Any], pm_id: str | None, amount: int,
                     behavior: str) -> None:
    """Refuse, before anything is written, a charge that `payment_behavior` says must succeed."""
    from .payment_methods import NO_PAYMENT_METHOD, charge_failure

    if amount <= 0 or behavior == "default_incomplete":
        return
    pm_id = pm_id or (customer.get("invoice_settings") or {}).get("default_payment_method")
    pm = call.store.get("payment_method", pm_id) if pm_id else None
    if pm is None:
        raise InvalidRequestError(NO_PAYMENT_METHOD, code="resource_missing")
    if behavior == "error_if_incomplete":
        failure = charge_failure(pm)
        if failure is not None:
            code, decline_code, message = failure
            raise CardError(message, code=code, decline_code=decline_code)


def _trial_end(call: Call, p: dict[str, Any], at: int, targets: list[changes.Target]
               ) -> int | None:
    if p.get("trial_end") not in (None, "") and p.get("trial_period_days") not in (None, ""):
        raise InvalidRequestError(
            "You may only specify one of these parameters: trial_end, trial_period_days.",
            param="trial_end")
    if p.get("trial_end") not in (None, ""):
        if p["trial_end"] == "now":
            return None
        end = as_int(p["trial_end"], "trial_end")
        if end <= at:
            raise InvalidRequestError(
                "Invalid timestamp: must be an integer Unix timestamp in the future.",
                param="trial_end")
        if end > at + MAX_TRIAL_DAYS * DAY:
            raise InvalidRequestError("The trial can last at most 730 days.", param="trial_end")
        return end
    days = None
    if p.get("trial_period_days") not in (None, ""):
        days = as_int(p["trial_period_days"], "trial_period_days")
    elif as_bool(p.get("trial_from_plan", False), "trial_from_plan"):
        days = targets[0].price["recurring"].get("trial_period_days")
    if not days:
        return None
    if days < 0 or days > MAX_TRIAL_DAYS:
        raise InvalidRequestError("trial_period_days must be between 0 and 730.",
                                  param="trial_period_days")
    return at + days * DAY


def _new_subscription(call: Call, customer: dict[str, Any], at: int,
                      targets: list[changes.Target]) -> dict[str, Any]:
    price = targets[0].price
    sub_id = call.store.new_id("sub")
    rec = price["recurring"]
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"enabled": False, "liability": None, "disabled_reason": None},
        "billing_cycle_anchor": at,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "flexible", "flexible": {"proration_discounts": "included"},
                         "updated_at": at},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "feedback_option": None,
                                 "reason": None},
        "collection_method": "charge_automatically",
        "created": at,
        "currency": price["currency"],
        "customer": customer["id"],
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"},
                             "custom_fields": None, "description": None, "footer": None},
        "items": {"object": "list", "data": [], "has_more": False,
                  "url": f"/v1/subscription_items?subscription={sub_id}"},
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                             "save_default_payment_method": "off"},
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": at,
        "status": "incomplete",
        "test_clock": customer.get("test_clock"),
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"billing_cycle_anchor": None,
                                            "missing_payment_method": "create_invoice"}},
        "trial_start": None,
        "_interval": [rec["interval"], rec["interval_count"]],
        "_period": [at, at],
        "_trial_notice_at": None,
        "_expires_at": None,
    }


def _cancel_at(p: dict[str, Any], at: int, current: int | None) -> int | None:
    if "cancel_at" not in p:
        return current
    if nullable(p["cancel_at"]) is None:
        return None
    if p["cancel_at"] in ("min_period_end", "max_period_end"):
        raise InvalidRequestError("The sandbox takes `cancel_at` as a timestamp.",
                                  param="cancel_at")
    cancel_at = as_int(p["cancel_at"], "cancel_at")
    if cancel_at <= at:
        raise InvalidRequestError("Invalid timestamp: `cancel_at` must be in the future.",
                                  param="cancel_at")
    return cancel_at


def _days_until_due(p: dict[str, Any], collection: str, current: int | None) -> int | None:
    """Stripe's rule: `days_until_due` is required with `send_invoice` and refused without."""
    given = p.get("days_until_due") not in (None, "")
    if collection == "charge_automatically":
        if given:
            raise InvalidRequestError(
                "Invalid days_until_due: it can only be set when `collection_method` is "
                "`send_invoice`.", param="days_until_due")
        return None
    days = as_int(p["days_until_due"], "days_until_due") if given else current
    if days is None:
        raise InvalidRequestError("Missing required param: days_until_due.",
                                  param="days_until_due", code="parameter_missing")
    if days < 0:
        raise InvalidRequestError("Invalid days_until_due: must be at least 0.",
                                  param="days_until_due")
    return days


def anchor_choice(value: Any, param: str) -> str:
    """`billing_cycle_anchor` on an update: `{type: now|unchanged}` (or the bare word)."""
    choice = value.get("type") if isinstance(value, dict) else value
    choice = choice or "unchanged"
    if choice not in ("now", "unchanged"):
        raise InvalidRequestError(f"Invalid {param}: the type must be one of now or unchanged "
                                  "for an existing subscription.", param=param)
    return str(choice)


def _trial_settings(p: dict[str, Any]) -> dict[str, Any] | None:
    raw = p.get("trial_settings")
    if not isinstance(raw, dict):
        return None
    end = raw.get("end_behavior") or {}
    behavior = end.get("missing_payment_method", "create_invoice")
    if behavior not in ("cancel", "create_invoice", "pause"):
        raise InvalidRequestError("Invalid missing_payment_method: must be one of cancel, "
                                  "create_invoice, or pause",
                                  param="trial_settings[end_behavior][missing_payment_method]")
    # The anchor resets when a trial ends (`now`, Stripe's default); keeping it is not modelled.
    anchor = end.get("billing_cycle_anchor")
    if anchor not in (None, "", "now"):
        raise InvalidRequestError(
            "The sandbox does not implement trial_settings[end_behavior][billing_cycle_anchor]"
            f"={anchor}; only `now`.", param="trial_settings[end_behavior][billing_cycle_anchor]")
    return {"end_behavior": {"billing_cycle_anchor": anchor or None,
                             "missing_payment_method": behavior}}


_ANCHOR_FIELDS = {"day_of_month": (1, 31), "hour": (0, 23), "minute": (0, 59),
                  "month": (1, 12), "second": (0, 59)}


def _anchor_config(p: dict[str, Any], trial_end: int | None, unit: str
                   ) -> dict[str, int | None] | None:
    """`billing_cycle_anchor_config` as Stripe echoes it (the fields not given are null)."""
    raw = p.get("billing_cycle_anchor_config")
    if raw in (None, ""):
        return None
    name = "billing_cycle_anchor_config"
    if not isinstance(raw, dict):
        raise InvalidRequestError("Invalid object", param=name)
    if p.get("billing_cycle_anchor") not in (None, ""):
        raise InvalidRequestError("You may only specify one of these parameters: "
                                  "billing_cycle_anchor, billing_cycle_anchor_config.", param=name)
    if unit not in ("month", "year"):
        raise InvalidRequestError("`billing_cycle_anchor_config` is only valid with monthly and "
                                  "yearly price intervals.", param=name)
    if trial_end is not None:
        raise InvalidRequestError("The sandbox does not combine a trial with "
                                  "`billing_cycle_anchor_config`.", param=name)
    config: dict[str, int | None] = {}
    for field, (low, high) in _ANCHOR_FIELDS.items():
        value = raw.get(field)
        if value in (None, ""):
            if field == "day_of_month":
                raise InvalidRequestError(f"Missing required param: {name}[{field}].",
                                          param=f"{name}[{field}]", code="parameter_missing")
            config[field] = None
            continue
        number = as_int(value, f"{name}[{field}]")
        if not low <= number <= high:
            raise InvalidRequestError(f"{name}[{field}] must be between {low} and {high}.",
                                      param=f"{name}[{field}]")
        config[field] = number
    if config["month"] is not None and unit != "year":
        raise InvalidRequestError(f"{name}[month] applies to yearly prices only.",
                                  param=f"{name}[month]")
    return config


def _payment_settings(p: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """`payment_settings[save_default_payment_method]` (`on_subscription`: a card the customer
    pays with on the hosted page becomes the subscription's default); the rest is refused."""
    raw = p.get("payment_settings")
    if raw in (None, ""):
        return current
    if not isinstance(raw, dict):
        raise InvalidRequestError("Invalid object", param="payment_settings")
    for key in raw:
        if key != "save_default_payment_method":
            raise InvalidRequestError(
                f"The sandbox does not implement `payment_settings[{key}]`.",
                param=f"payment_settings[{key}]")
    save = raw.get("save_default_payment_method", current["save_default_payment_method"])
    if save not in ("off", "on_subscription"):
        raise InvalidRequestError("Invalid payment_settings[save_default_payment_method]: must "
                                  "be one of off or on_subscription",
                                  param="payment_settings[save_default_payment_method]")
    return dict(current, save_default_payment_method=save)


def _utc_time(at: int) -> tuple[int, int, int]:
    """Hour, minute and second of `at` in UTC: what the anchor keeps when they are not given."""
    seconds = at % 86400
    return seconds // 3600, seconds // 60 % 60, seconds % 60


# --- subscriptions ---------------------------------------------------------------------------


@routes.post("/v1/subscriptions")
def create(call: Call) -> dict[str, Any]:
    p = call.params
    _refuse_unsupported(p)
    customer = _customer(call, require(p, "customer"))
    plan = changes.parse_items(call.sandbox, None, require(p, "items"))
    targets = plan.targets
    at = call.now(customer.get("test_clock"))
    behavior = _choice(p, "payment_behavior", PAYMENT_BEHAVIORS[:3], "allow_incomplete")
    prorate_first = _choice(p, "proration_behavior", PRORATION_BEHAVIORS,
                            "create_prorations") != "none"
    collection = _choice(p, "collection_method", ("charge_automatically", "send_invoice"),
                         "charge_automatically")
    days_until_due = _days_until_due(p, collection, None)
    pm_id = None
    if p.get("default_payment_method"):
        pm_id = _attached_pm(call, p["default_payment_method"], customer["id"],
                             "default_payment_method")
    trial_end = _trial_end(call, p, at, targets)
    anchor = None
    unit, count = targets[0].price["recurring"]["interval"], targets[0].price["recurring"][
        "interval_count"]
    if p.get("billing_cycle_anchor") not in (None, ""):
        anchor = as_int(p["billing_cycle_anchor"], "billing_cycle_anchor")
        if trial_end is not None:
            raise InvalidRequestError("The sandbox does not combine a trial with "
                                      "`billing_cycle_anchor`.", param="billing_cycle_anchor")
        if not at < anchor <= schedule.boundary(at, unit, count, 1):
            raise InvalidRequestError(
                "billing_cycle_anchor must be in the future and no later than one billing "
                "period from now.", param="billing_cycle_anchor")
    config = _anchor_config(p, trial_end, unit)
    reference = None
    if config is not None:
        hour, minute, second = (at_utc if config[k] is None else int(config[k] or 0)
                                for k, at_utc in zip(("hour", "minute", "second"),
                                                     _utc_time(at), strict=True))
        anchor, reference = schedule.anchor_from_config(
            at, unit, count, int(config["day_of_month"] or 1), hour, minute, second,
            config["month"])
    cancel_at = _cancel_at(p, at, None)
    trial_settings = _trial_settings(p)
    sub = _new_subscription(call, customer, at, targets)
    items = [state.new_item(call.sandbox, sub["id"], t.price, t.quantity, at, t.metadata,
                            item_id=t.item_id) for t in targets]
    state.set_items(sub, items)
    if trial_end is not None:
        sub.update(status="trialing", trial_start=at, trial_end=trial_end,
                   billing_cycle_anchor=trial_end)
        state.set_period(sub, at, trial_end)
    else:
        sub["billing_cycle_anchor"] = anchor or at
        state.set_period(sub, at, anchor or schedule.boundary(at, unit, count, 1))
    if config is not None:
        sub["billing_cycle_anchor_config"] = config
        if reference != anchor:
            sub["_cycle_reference"] = reference
    sub.update(
        collection_method=collection, days_until_due=days_until_due,
        default_payment_method=pm_id, description=nullable(p.get("description")),
        metadata=merge_metadata({}, p.get("metadata") or {}),
        cancel_at_period_end=as_bool(p.get("cancel_at_period_end", False),
                                     "cancel_at_period_end"),
        cancel_at=cancel_at,
    )
    if sub["cancel_at_period_end"]:
        sub["cancel_at"] = state.period(sub)[1]
    if trial_settings:
        sub["trial_settings"] = trial_settings
    sub["payment_settings"] = _payment_settings(p, sub["payment_settings"])
    if isinstance(p.get("billing_mode"), dict) and p["billing_mode"].get("type") == "classic":
        sub["billing_mode"] = {"type": "classic", "flexible": None, "updated_at": at}
    if trial_end is None and collection == "charge_automatically":
        first = state.first_period_lines(call.sandbox, sub, None, at, prorate_first,
                                         preview=True)
        pending = sum(item["amount"] for item in invoicing.pending_items(
            call.sandbox, customer["id"], None, True))
        _precheck_charge(call, customer, pm_id, sum(x["amount"] for x in first) + pending,
                         behavior)
    call.store.put(sub)
    state.start(call.sandbox, sub, at, behavior, prorate_first, call)
    return sub


@routes.get("/v1/subscriptions/search")
def search(call: Call) -> dict[str, Any]:
    return search_page(call.store.all("subscription"), call.params, "/v1/subscriptions/search",
                       SEARCH_FIELDS)


@routes.get("/v1/subscriptions/{subscription_exposed_id}")
def retrieve(call: Call, subscription_exposed_id: str) -> dict[str, Any]:
    return _get(call, subscription_exposed_id)


@routes.post("/v1/subscriptions/{subscription_exposed_id}")
def update(call: Call, subscription_exposed_id: str) -> dict[str, Any]:
    sub = _get(call, subscription_exposed_id)
    p = call.params
    if sub["status"] in state.ENDED:
        extra = set(p) - {"metadata", "cancellation_details", "expand"}
        if extra:
            raise InvalidRequestError(
                "A canceled subscription can only update its cancellation_details and metadata.",
                param=sorted(extra)[0])
    if sub["status"] == "incomplete":
        extra = set(p) - _INCOMPLETE_EDITABLE
        if extra:
            raise InvalidRequestError(
                "You cannot update a subscription in `incomplete` status in a way that results "
                "in a new invoice or invoice items. Only metadata and default_payment_method "
                "can be updated.", param=sorted(extra)[0])
    return apply_change(call, sub, p, p.get("items") if "items" in p else None)


def apply_change(call: Call, sub: dict[str, Any], p: dict[str, Any], raw_items: Any
                 ) -> dict[str, Any]:
    """Validate and apply an update (also used by the subscription item endpoints)."""
    _refuse_unsupported(p)
    sandbox = call.sandbox
    at = call.now(sub.get("test_clock"))
    proration = _choice(p, "proration_behavior", PRORATION_BEHAVIORS, "create_prorations")
    behavior = _choice(p, "payment_behavior", PAYMENT_BEHAVIORS, "allow_incomplete")
    if behavior == "pending_if_incomplete":
        raise InvalidRequestError("The sandbox does not support pending updates "
                                  "(`payment_behavior=pending_if_incomplete`).",
                                  param="payment_behavior")
    anchor = anchor_choice(p.get("billing_cycle_anchor"), "billing_cycle_anchor")
    if raw_items is not None:
        plan = changes.parse_items(sandbox, sub, raw_items)
    else:
        plan = changes.parse_items(sandbox, sub, [])
    start_at, end_at = state.period(sub)
    plan.at = at
    if p.get("proration_date") not in (None, ""):
        plan.at = as_int(p["proration_date"], "proration_date")
        if not start_at <= plan.at <= end_at:
            raise InvalidRequestError(
                "proration_date must be within the subscription's current billing period.",
                param="proration_date")
    plan.reset_anchor = anchor == "now" and sub["status"] != "trialing"
    items_changed = raw_items is not None and bool(
        plan.removed or any(t.source is None or t.source["price"]["id"] != t.price["id"]
                            or t.source["quantity"] != t.quantity for t in plan.targets))
    if items_changed or plan.reset_anchor:
        changes.plan_prorations(sandbox, sub, plan, proration)
    plan.invoice_now = plan.reset_anchor or (proration == "always_invoice" and (
        items_changed or bool(plan.prorations)))
    pm_id = sub["default_payment_method"]
    if "default_payment_method" in p:
        pm_id = nullable(p["default_payment_method"])
        if pm_id is not None:
            pm_id = _attached_pm(call, pm_id, sub["customer"], "default_payment_method")
    trial_end = None
    if p.get("trial_end") not in (None, ""):
        if sub["status"] != "trialing":
            raise InvalidRequestError("The sandbox can change `trial_end` only while the "
                                      "subscription is trialing.", param="trial_end")
        trial_end = at if p["trial_end"] == "now" else as_int(p["trial_end"], "trial_end")
        if trial_end < at:
            raise InvalidRequestError("Invalid timestamp: must be in the future.",
                                      param="trial_end")
    cancel_at = _cancel_at(p, at, sub["cancel_at"])
    cancel_flag = sub["cancel_at_period_end"]
    if "cancel_at_period_end" in p:
        cancel_flag = as_bool(p["cancel_at_period_end"], "cancel_at_period_end")
    collection = _choice(p, "collection_method", ("charge_automatically", "send_invoice"),
                         sub["collection_method"])
    days_until_due = _days_until_due(p, collection, sub["days_until_due"])
    payment_settings = _payment_settings(p, sub["payment_settings"])
    if plan.invoice_now:
        _precheck_charge(call, _customer(call, sub["customer"]), pm_id,
                         changes.immediate_total(sandbox, sub, plan), behavior)
    # --- everything is valid: write ---
    before = state.snapshot(sub)
    sub["_quiet"] = True
    try:
        if "metadata" in p:
            sub["metadata"] = merge_metadata(sub["metadata"], p["metadata"])
        if "description" in p:
            sub["description"] = nullable(p["description"])
        if isinstance(p.get("cancellation_details"), dict):
            for key in ("comment", "feedback"):
                if key in p["cancellation_details"]:
                    sub["cancellation_details"][key] = nullable(p["cancellation_details"][key])
        sub["default_payment_method"] = pm_id
        sub["payment_settings"] = payment_settings
        sub["collection_method"] = collection
        sub["days_until_due"] = days_until_due
        if "trial_settings" in p:
            sub["trial_settings"] = _trial_settings(p) or sub["trial_settings"]
        if cancel_flag != sub["cancel_at_period_end"] or cancel_at != sub["cancel_at"]:
            sub["cancel_at_period_end"] = cancel_flag
            sub["cancel_at"] = state.period(sub)[1] if cancel_flag else cancel_at
            requested = cancel_flag or cancel_at is not None
            sub["canceled_at"] = at if requested else None
            sub["cancellation_details"]["reason"] = "cancellation_requested" if requested \
                else None
        old_span = state.period(sub)
        if raw_items is not None or plan.reset_anchor:
            changes.commit(sandbox, sub, plan, call)
        if plan.reset_anchor:
            changes.reset_period(sub, at)
        if plan.invoice_now:
            changes.invoice_now(sandbox, sub, plan, old_span, call,
                                collect=behavior != "default_incomplete")
        if trial_end is not None:
            if trial_end == at:
                state.end_trial(sandbox, sub, at, call)
            else:
                sub["trial_end"] = trial_end
                sub["billing_cycle_anchor"] = trial_end
                state.set_period(sub, state.period(sub)[0], trial_end)
                state.arm_trial_notice(sandbox, sub, at, call)
    finally:
        del sub["_quiet"]
    if sub["status"] == "canceled" and before["status"] != "canceled":
        schedule.touch(sandbox, sub)  # ended inside (final payment failure): deleted was sent
    else:
        state.emit_updated(sandbox, sub, before, call)
    return sub


@routes.delete("/v1/subscriptions/{subscription_exposed_id}")
def cancel(call: Call, subscription_exposed_id: str) -> dict[str, Any]:
    sub = _get(call, subscription_exposed_id)
    p = call.params
    if sub["status"] in state.ENDED:
        raise InvalidRequestError(
            f"This subscription has already been canceled ({subscription_exposed_id}).",
            code="resource_missing", status=404)
    invoice_now = as_bool(p.get("invoice_now", False), "invoice_now")
    prorate = as_bool(p.get("prorate", False), "prorate")
    details = p.get("cancellation_details") if isinstance(p.get("cancellation_details"),
                                                          dict) else {}
    for key in ("comment", "feedback"):
        if key in details:
            sub["cancellation_details"][key] = nullable(details[key])
    state.end_subscription(call.sandbox, sub, call.now(sub.get("test_clock")),
                           reason="cancellation_requested", request=call,
                           invoice_now=invoice_now, prorate=prorate)
    return sub


@routes.get("/v1/subscriptions")
def list_(call: Call) -> dict[str, Any]:
    p = call.params
    status = p.get("status")
    in_range = created_filter(p)
    period_start = created_filter(p, "current_period_start")
    period_end = created_filter(p, "current_period_end")
    price = p.get("price") or p.get("plan")

    def status_ok(sub: dict[str, Any]) -> bool:
        if status in (None, ""):
            return sub["status"] != "canceled"
        if status == "all":
            return True
        if status == "ended":
            return sub["status"] in state.ENDED
        return sub["status"] == status

    found = [
        sub for sub in call.store.all("subscription")
        if status_ok(sub)
        and (not p.get("customer") or sub["customer"] == p["customer"])
        and (not p.get("test_clock") or sub["test_clock"] == p["test_clock"])
        and (not p.get("collection_method") or sub["collection_method"] == p["collection_method"])
        and (not price or any(i["price"]["id"] == price for i in state.items_of(sub)))
        and in_range(sub)
        and period_start({"current_period_start": sub["_period"][0]})
        and period_end({"current_period_end": sub["_period"][1]})
    ]
    return paginate(found, p, "/v1/subscriptions")


# --- subscription items ----------------------------------------------------------------------


def _item(call: Call, item_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for sub in call.store.all("subscription"):
        for item in state.items_of(sub):
            if item["id"] == item_id:
                return sub, item
    raise NotFoundError("subscription item", item_id)


def _change_params(p: dict[str, Any]) -> dict[str, Any]:
    keep = ("proration_behavior", "proration_date", "payment_behavior")
    return {k: p[k] for k in keep if k in p}


def _item_after(sub: dict[str, Any], item_id: str) -> dict[str, Any]:
    for item in state.items_of(sub):
        if item["id"] == item_id:
            return item
    raise NotFoundError("subscription item", item_id)


@routes.get("/v1/subscription_items")
def list_items(call: Call) -> dict[str, Any]:
    sub = _get(call, require(call.params, "subscription"))
    items = list(reversed(state.items_of(sub)))  # paginate lists newest first; keep item order
    page = paginate(items, call.params, f"/v1/subscription_items?subscription={sub['id']}")
    return page


@routes.post("/v1/subscription_items")
def create_item(call: Call) -> dict[str, Any]:
    p = call.params
    sub = _get(call, require(p, "subscription"))
    entry = {k: p[k] for k in ("price", "quantity", "metadata") if k in p}
    require(p, "price")
    known = {i["id"] for i in state.items_of(sub)}
    apply_change(call, sub, _change_params(p), [entry])
    made = [i for i in state.items_of(sub) if i["id"] not in known]
    return made[0]


@routes.get("/v1/subscription_items/{item}")
def retrieve_item(call: Call, item: str) -> dict[str, Any]:
    return _item(call, item)[1]


@routes.post("/v1/subscription_items/{item}")
def update_item(call: Call, item: str) -> dict[str, Any]:
    p = call.params
    sub, _ = _item(call, item)
    entry = {"id": item, **{k: p[k] for k in ("price", "quantity", "metadata") if k in p}}
    apply_change(call, sub, _change_params(p), [entry])
    return _item_after(sub, item)


@routes.delete("/v1/subscription_items/{item}")
def delete_item(call: Call, item: str) -> dict[str, Any]:
    p = call.params
    sub, _ = _item(call, item)
    apply_change(call, sub, _change_params(p), [{"id": item, "deleted": "true"}])
    return {"id": item, "object": "subscription_item", "deleted": True}
