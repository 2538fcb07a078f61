"""Subscription schedules: a subscription's planned changes as phases in time.

What the sandbox does, as Stripe documents it:
- `from_subscription` puts an existing subscription on a schedule of one phase, its current
  items from the period start to the period end (`status: active`, the subscription's
  `schedule` set). `customer` + `phases` starts a new subscription now on the first phase;
- an update replaces the phases. The current phase must be sent first with its `start_date`
  unchanged; each phase ends at its `end_date`, after `duration` (a number of intervals), or —
  for the last phase when neither is given — after one billing interval of its prices; the next
  phase starts where the previous one ends;
- when a phase starts, the subscription's items become the phase's items (prorated by the
  phase's `proration_behavior` when it starts mid-period; at a period boundary there is
  nothing to prorate). A phase that starts at the period end takes effect before the renewal
  invoice is drafted, so that invoice bills the new phase's prices;
- after the last phase: `end_behavior=release` leaves the subscription running on the last
  phase's items (`status: released`, `released_subscription`, `subscription_schedule.released`);
  `cancel` cancels the subscription (`status: completed`, `subscription_schedule.completed`);
- `release` detaches the subscription now; `cancel` cancels the schedule and the subscription
  now (`invoice_now`, `prorate` as on a subscription cancel); a subscription that ends outside
  the schedule (deleted, dunning) aborts it (`status: canceled`, `subscription_schedule.aborted`).

Refused with a 400 naming the parameter: a schedule that starts in the future (`start_date`),
`default_settings` other than empty, phase settings other than `items`, `start_date`,
`end_date`, `duration`, `proration_behavior` and `metadata` (trials, coupons, tax, invoice
items, collection settings, anchors), `price_data`/`plan` on phase items, phases with
`proration_behavior=always_invoice`, `pause_schedules`, and a schedule on a subscription that
already has one or is incomplete.
"""

from __future__ import annotations

import copy
import weakref
from typing import TYPE_CHECKING, Any

from .. import schedule as due
from .. import subscription_changes as changes
from .. import subscription_state as state
from ..engine import Call
from ..errors import InvalidRequestError, NotFoundError
from ..listing import created_filter, paginate, public
from ..router import Routes
from ..wire import as_bool, as_int, as_list, merge_metadata
from .common import require

if TYPE_CHECKING:
    from ..engine import Sandbox

routes = Routes()

KIND = "subscription_schedule"
LIVE = ("not_started", "active")
PHASE_PRORATIONS = ("create_prorations", "none")
_PHASE_KEYS = {"items", "start_date", "end_date", "duration", "proration_behavior", "metadata"}
_ITEM_KEYS = {"price", "quantity", "metadata"}
_FOLLOWING: weakref.WeakSet[Any] = weakref.WeakSet()


# --- shapes ----------------------------------------------------------------------------------


def _default_settings(sub: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "application_fee_percent": None,
        "automatic_tax": {"enabled": False, "liability": None, "disabled_reason": None},
        "billing_cycle_anchor": "automatic",
        "billing_thresholds": None,
        "collection_method": (sub or {}).get("collection_method", "charge_automatically"),
        "default_payment_method": (sub or {}).get("default_payment_method"),
        "description": None,
        "invoice_settings": {"account_tax_ids": None, "days_until_due": None,
                             "issuer": {"type": "self"}, "custom_fields": None,
                             "description": None, "footer": None},
        "on_behalf_of": None,
        "transfer_data": None,
    }


def _phase_item(price: dict[str, Any], quantity: int | None,
                metadata: dict[str, str] | None = None) -> dict[str, Any]:
    plan = state.plan_of(price)
    plan.pop("_tiers", None)
    return {"billing_thresholds": None, "discounts": [], "metadata": dict(metadata or {}),
            "plan": plan, "price": price["id"],
            "quantity": None if state.is_metered(price) else quantity, "tax_rates": []}


def _phase(items: list[dict[str, Any]], currency: str, start: int, end: int,
           proration: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "add_invoice_items": [], "application_fee_percent": None, "billing_cycle_anchor": None,
        "billing_thresholds": None, "collection_method": None, "currency": currency,
        "default_payment_method": None, "default_tax_rates": [], "description": None,
        "discounts": [], "end_date": end, "invoice_settings": None, "items": items,
        "metadata": dict(metadata or {}), "on_behalf_of": None,
        "proration_behavior": proration, "start_date": start, "transfer_data": None,
        "trial_end": None,
    }


def _new_schedule(call: Call, customer_id: str, sub: dict[str, Any], at: int,
                  end_behavior: str) -> dict[str, Any]:
    mode = sub.get("billing_mode") or {"type": "classic"}
    return {
        "id": call.store.new_id("sub_sched"),
        "object": KIND,
        "application": None,
        "billing_mode": {"type": mode.get("type", "classic"), "flexible": mode.get("flexible"),
                         "updated_at": mode.get("updated_at")},
        "canceled_at": None,
        "completed_at": None,
        "created": at,
        "current_phase": None,
        "customer": customer_id,
        "customer_account": None,
        "default_settings": _default_settings(sub),
        "end_behavior": end_behavior,
        "livemode": False,
        "metadata": {},
        "pause_schedules": [],
        "phases": [],
        "released_at": None,
        "released_subscription": None,
        "status": "active",
        "subscription": sub["id"],
        "test_clock": sub.get("test_clock"),
        "_applied": 0,  # index of the phase whose items the subscription carries
    }


def _refresh_current(sched: dict[str, Any]) -> None:
    if sched["status"] != "active" or not sched["phases"]:
        sched["current_phase"] = None
        return
    phase = sched["phases"][sched["_applied"]]
    sched["current_phase"] = {"start_date": phase["start_date"], "end_date": phase["end_date"]}


# --- parsing ---------------------------------------------------------------------------------


def _choice(value: Any, allowed: tuple[str, ...], param: str, default: str) -> str:
    value = value or default
    if value not in allowed:
        raise InvalidRequestError(f"Invalid {param}: must be one of {', '.join(allowed)}",
                                  param=param)
    return str(value)


def _phase_end(phase: dict[str, Any], start: int, price: dict[str, Any], last: bool,
               name: str) -> int:
    if phase.get("end_date") not in (None, "") and phase.get("duration") not in (None, ""):
        raise InvalidRequestError("You may only specify one of these parameters: end_date, "
                                  "duration.", param=f"{name}[end_date]")
    if phase.get("end_date") not in (None, ""):
        if phase["end_date"] == "now":
            raise InvalidRequestError("The sandbox takes a phase's `end_date` as a timestamp.",
                                      param=f"{name}[end_date]")
        end = as_int(phase["end_date"], f"{name}[end_date]")
    elif isinstance(phase.get("duration"), dict):
        duration = phase["duration"]
        unit = require(duration, "interval")
        count = as_int(duration.get("interval_count") or 1, f"{name}[duration][interval_count]")
        end = due.boundary(start, unit, count, 1)
    elif last:
        rec = price["recurring"]
        end = due.boundary(start, rec["interval"], int(rec["interval_count"]), 1)
    else:
        raise InvalidRequestError("Every phase but the last needs an `end_date` or a "
                                  "`duration`.", param=f"{name}[end_date]")
    if end <= start:
        raise InvalidRequestError("A phase's end_date must be after its start_date.",
                                  param=f"{name}[end_date]")
    return end


def _parse_phases(sandbox: Sandbox, currency: str | None, raw: Any, start: int,
                  default_proration: str) -> list[dict[str, Any]]:
    phases: list[dict[str, Any]] = []
    entries = as_list(raw, "phases")
    if not entries:
        raise InvalidRequestError("A schedule needs at least one phase.", param="phases")
    for i, entry in enumerate(entries):
        name = f"phases[{i}]"
        if not isinstance(entry, dict):
            raise InvalidRequestError("Invalid object", param=name,
                                      code="parameter_invalid_object")
        for key in sorted(set(entry) - _PHASE_KEYS):
            if entry[key] not in (None, "", [], {}):
                raise InvalidRequestError(f"The sandbox does not support `{key}` on schedule "
                                          "phases.", param=f"{name}[{key}]")
        if entry.get("items") in (None, "", []):
            raise InvalidRequestError(f"Missing required param: {name}[items].",
                                      param=f"{name}[items]", code="parameter_missing")
        items_in = as_list(entry["items"], f"{name}[items]")
        for j, item in enumerate(items_in):
            extra = sorted(k for k in (item if isinstance(item, dict) else {})
                           if k not in _ITEM_KEYS and item[k] not in (None, "", [], {}))
            if extra:
                raise InvalidRequestError(f"The sandbox supports `price`, `quantity` and "
                                          f"`metadata` on phase items, not `{extra[0]}`.",
                                          param=f"{name}[items][{j}][{extra[0]}]")
        plan = changes.parse_items(sandbox, None, items_in, param=f"{name}[items]")
        if entry.get("start_date") not in (None, ""):
            given = start if entry["start_date"] == "now" else as_int(
                entry["start_date"], f"{name}[start_date]")
            if given != start:
                what = ("The current phase's start_date cannot change" if i == 0 else
                        "Each phase must start where the previous one ends")
                raise InvalidRequestError(f"{what} ({start}).", param=f"{name}[start_date]")
        proration = _choice(entry.get("proration_behavior"), PHASE_PRORATIONS,
                            f"{name}[proration_behavior]", default_proration)
        end = _phase_end(entry, start, plan.targets[0].price, i == len(entries) - 1, name)
        items = [_phase_item(t.price, t.quantity, t.metadata) for t in plan.targets]
        phases.append(_phase(items, plan.targets[0].price["currency"], start, end, proration,
                             merge_metadata({}, entry.get("metadata") or {},
                                            f"{name}[metadata]")))
        start = end
    if currency is not None and phases[0]["currency"] != currency:
        raise InvalidRequestError("A schedule's phases must use the subscription's currency.",
                                  param="phases[0][items]")
    return phases


# --- applying phases -------------------------------------------------------------------------


def _apply_phase(sandbox: Sandbox, sched: dict[str, Any], sub: dict[str, Any], index: int,
                 at: int, request: Call | None = None) -> None:
    """Make the subscription's items those of phase `index`, starting at `at`."""
    phase = sched["phases"][index]
    current = {item["price"]["id"]: item for item in state.items_of(sub)}
    wanted = {item["price"] for item in phase["items"]}
    raw: list[dict[str, Any]] = [{"id": item["id"], "deleted": "true"}
                                 for price_id, item in current.items() if price_id not in wanted]
    for item in phase["items"]:
        entry: dict[str, Any] = {"price": item["price"], "metadata": item["metadata"]}
        if item["price"] in current:
            entry["id"] = current[item["price"]]["id"]
        if item["quantity"] is not None:
            entry["quantity"] = item["quantity"]
        raw.append(entry)
    plan = changes.parse_items(sandbox, sub, raw, new_price_active=False)
    plan.at = at
    changes.plan_prorations(sandbox, sub, plan, phase["proration_behavior"])
    before = state.snapshot(sub)
    changes.commit(sandbox, sub, plan, request)
    sched["_applied"] = index
    _refresh_current(sched)
    state.emit_updated(sandbox, sub, before, request)


def _detach(sandbox: Sandbox, sched: dict[str, Any], request: Call | None) -> None:
    sub = sandbox.store.get("subscription", sched["subscription"] or "")
    sched["released_subscription"] = sched["subscription"]
    sched["subscription"] = None
    if sub is not None and sub.get("schedule") == sched["id"]:
        before = state.snapshot(sub)
        sub["schedule"] = None
        state.emit_updated(sandbox, sub, before, request)


def _finish(sandbox: Sandbox, sched: dict[str, Any], at: int) -> None:
    """The last phase ended at `at`: release or cancel as `end_behavior` says."""
    sub = sandbox.store.get("subscription", sched["subscription"] or "")
    if sched["end_behavior"] == "cancel":
        sched["status"] = "completed"
        sched["completed_at"] = at
        _refresh_current(sched)
        if sub is not None and sub["status"] not in state.ENDED:
            sub["_schedule_ending"] = True
            state.end_subscription(sandbox, sub, at, reason=None, final_usage=True)
            sub.pop("_schedule_ending", None)
        sandbox.emit("subscription_schedule.completed", sched)
        return
    sched["status"] = "released"
    sched["released_at"] = at
    _refresh_current(sched)
    _detach(sandbox, sched, None)
    sandbox.emit("subscription_schedule.released", sched)


def advance_to(sandbox: Sandbox, sched: dict[str, Any], at: int) -> None:
    """Start every phase (and the end) due by `at`, in order."""
    sub = sandbox.store.get("subscription", sched["subscription"] or "")
    while sched["status"] == "active" and sub is not None:
        phase = sched["phases"][sched["_applied"]]
        if phase["end_date"] > at:
            break
        if sched["_applied"] + 1 < len(sched["phases"]):
            _apply_phase(sandbox, sched, sub, sched["_applied"] + 1, phase["end_date"])
            sandbox.emit("subscription_schedule.updated", sched)
        else:
            _finish(sandbox, sched, phase["end_date"])
    due.touch(sandbox, sched)


def before_renewal(sandbox: Sandbox, sub: dict[str, Any], at: int) -> None:
    """Called by the subscription's renewal: phases starting at the period end come first."""
    sched = sandbox.store.get(KIND, sub.get("schedule") or "")
    if sched is not None:
        advance_to(sandbox, sched, at)


def _next_due(sched: dict[str, Any]) -> int | None:
    if sched["status"] != "active" or not sched["phases"]:
        return None
    return int(sched["phases"][sched["_applied"]]["end_date"])


def _process(sandbox: Sandbox, sched: dict[str, Any], at: int) -> None:
    advance_to(sandbox, sched, at)


due.register(KIND, _next_due, _process)


def tick(sandbox: Sandbox, clock_id: str | None, until: int) -> None:
    """Install, once per sandbox, the listener that aborts a schedule whose subscription ends
    outside it (time itself is driven by the shared due queue)."""
    if sandbox in _FOLLOWING:
        return
    _FOLLOWING.add(sandbox)

    def on_event(event: dict[str, Any]) -> None:
        if event["type"] != "customer.subscription.deleted":
            return
        sub = sandbox.store.get("subscription", event["data"]["object"]["id"])
        if sub is None or sub.get("_schedule_ending"):
            return
        sched = sandbox.store.get(KIND, sub.get("schedule") or "")
        if sched is None or sched["status"] not in LIVE:
            return
        sched["status"] = "canceled"
        sched["canceled_at"] = sub.get("ended_at")
        _refresh_current(sched)
        due.touch(sandbox, sched)
        sandbox.emit("subscription_schedule.aborted", sched)

    sandbox.listeners.append(on_event)


# --- endpoints -------------------------------------------------------------------------------


def _get(call: Call, schedule: str) -> dict[str, Any]:
    sched = call.store.get(KIND, schedule)
    if sched is None:
        raise NotFoundError("subscription_schedule", schedule)
    return sched


def _refuse(p: dict[str, Any]) -> None:
    if p.get("pause_schedules") not in (None, "", [], {}):
        raise InvalidRequestError("The sandbox does not support `pause_schedules`.",
                                  param="pause_schedules")
    settings = p.get("default_settings")
    if isinstance(settings, dict):
        for key, value in settings.items():
            if value not in (None, "", [], {}):
                raise InvalidRequestError(f"The sandbox does not support `default_settings"
                                          f"[{key}]` on schedules.",
                                          param=f"default_settings[{key}]")


def _from_subscription(call: Call, sub_id: str, end_behavior: str) -> dict[str, Any]:
    sub = call.store.get("subscription", sub_id)
    if sub is None:
        raise InvalidRequestError(f"No such subscription: '{sub_id}'",
                                  param="from_subscription", code="resource_missing")
    if sub["status"] in state.ENDED or sub["status"] in ("incomplete", "paused"):
        raise InvalidRequestError(
            f"The sandbox can put only a trialing, active, past_due or unpaid subscription "
            f"on a schedule; "
            f"{sub_id} is {sub['status']}.", param="from_subscription")
    if sub.get("schedule"):
        raise InvalidRequestError(f"Subscription {sub_id} is already managed by the "
                                  f"subscription schedule {sub['schedule']}.",
                                  param="from_subscription")
    at = call.now(sub.get("test_clock"))
    sched = _new_schedule(call, sub["customer"], sub, at, end_behavior)
    start, end = state.period(sub)
    items = [_phase_item(item["price"], item["quantity"], item["metadata"])
             for item in state.items_of(sub)]
    sched["phases"] = [_phase(items, sub["currency"], start, end, "create_prorations")]
    if sub["status"] == "trialing":
        sched["phases"][0]["trial_end"] = sub["trial_end"]
    _refresh_current(sched)
    call.store.put(sched)
    before = state.snapshot(sub)
    sub["schedule"] = sched["id"]
    call.sandbox.emit("subscription_schedule.created", sched, request=call)
    state.emit_updated(call.sandbox, sub, before, call)
    due.touch(call.sandbox, sched)
    return sched


@routes.post("/v1/subscription_schedules")
def create(call: Call) -> dict[str, Any]:
    from .subscriptions import create as create_subscription

    p = call.params
    _refuse(p)
    end_behavior = _choice(p.get("end_behavior"), ("release", "cancel"), "end_behavior",
                           "release")
    if p.get("from_subscription"):
        for name in ("customer", "phases", "start_date"):
            if p.get(name) not in (None, "", []):
                raise InvalidRequestError(
                    f"You cannot set `{name}` together with `from_subscription`; update the "
                    "schedule's phases afterwards.", param=name)
        sched = _from_subscription(call, p["from_subscription"], end_behavior)
        if "metadata" in p:
            sched["metadata"] = merge_metadata({}, p["metadata"])
        return sched
    customer_id = require(p, "customer")
    raw_phases = require(p, "phases")
    customer = call.store.get("customer", customer_id)
    if customer is None or customer.get("deleted"):
        raise InvalidRequestError(f"No such customer: '{customer_id}'", param="customer",
                                  code="resource_missing")
    at = call.now(customer.get("test_clock"))
    if p.get("start_date") not in (None, "", "now") and as_int(p["start_date"],
                                                               "start_date") != at:
        raise InvalidRequestError("The sandbox starts schedules now: a future or past "
                                  "`start_date` is not supported.", param="start_date")
    first = as_list(raw_phases, "phases")[0]
    items = [{k: v for k, v in item.items() if k in _ITEM_KEYS}
             for item in as_list(first["items"], "phases[0][items]")]
    sub_call = Call(call.sandbox, "POST", "/v1/subscriptions",
                    {"customer": customer_id, "items": items}, call.request_id, None)
    phases = _parse_phases(call.sandbox, None, raw_phases, at, "create_prorations")
    sub = create_subscription(sub_call)
    sched = _new_schedule(call, customer_id, sub, at, end_behavior)
    sched["phases"] = phases
    sched["metadata"] = merge_metadata({}, p.get("metadata") or {})
    _refresh_current(sched)
    call.store.put(sched)
    sub["schedule"] = sched["id"]
    call.sandbox.emit("subscription_schedule.created", sched, request=call)
    due.touch(call.sandbox, sched)
    return sched


@routes.get("/v1/subscription_schedules/{schedule}")
def retrieve(call: Call, schedule: str) -> dict[str, Any]:
    return _get(call, schedule)


@routes.get("/v1/subscription_schedules")
def list_(call: Call) -> dict[str, Any]:
    p = call.params
    in_range = created_filter(p)
    found = [s for s in call.store.all(KIND)
             if (not p.get("customer") or s["customer"] == p["customer"])
             and (not as_bool(p.get("scheduled", False), "scheduled")
                  or s["status"] == "not_started")
             and in_range(s)]
    return paginate(found, p, "/v1/subscription_schedules")


@routes.post("/v1/subscription_schedules/{schedule}")
def update(call: Call, schedule: str) -> dict[str, Any]:
    sched = _get(call, schedule)
    p = call.params
    _refuse(p)
    if sched["status"] not in LIVE:
        raise InvalidRequestError(f"You cannot update a subscription schedule that is "
                                  f"{sched['status']}.", param="phases" if "phases" in p
                                  else None)
    proration = _choice(p.get("proration_behavior"), PHASE_PRORATIONS, "proration_behavior",
                        "create_prorations")
    sub = call.store.get("subscription", sched["subscription"] or "")
    before = copy.deepcopy(public(sched))
    if "end_behavior" in p:
        sched["end_behavior"] = _choice(p["end_behavior"], ("release", "cancel"),
                                        "end_behavior", "release")
    if "phases" in p and sub is not None:
        current = sched["phases"][sched["_applied"]]
        phases = _parse_phases(call.sandbox, sub["currency"], p["phases"], current["start_date"],
                               proration)
        sched["phases"] = phases
        sched["_applied"] = 0
        at = call.now(sub.get("test_clock"))
        _apply_phase(call.sandbox, sched, sub, 0, at, call)  # the current phase's items now
        advance_to(call.sandbox, sched, at)
    if "metadata" in p:
        sched["metadata"] = merge_metadata(sched["metadata"], p["metadata"])
    _refresh_current(sched)
    after = public(sched)
    previous = {k: v for k, v in before.items() if after.get(k) != v}
    call.sandbox.emit("subscription_schedule.updated", sched, previous, request=call)
    due.touch(call.sandbox, sched)
    return sched


@routes.post("/v1/subscription_schedules/{schedule}/release")
def release(call: Call, schedule: str) -> dict[str, Any]:
    sched = _get(call, schedule)
    if sched["status"] not in LIVE:
        raise InvalidRequestError(f"You cannot release a subscription schedule that is "
                                  f"{sched['status']}.")
    as_bool(call.params.get("preserve_cancel_date", True), "preserve_cancel_date")
    sub = call.store.get("subscription", sched["subscription"] or "")
    sched["status"] = "released"
    sched["released_at"] = call.now(sub.get("test_clock") if sub else None)
    _refresh_current(sched)
    _detach(call.sandbox, sched, call)
    call.sandbox.emit("subscription_schedule.released", sched, request=call)
    due.touch(call.sandbox, sched)
    return sched


@routes.post("/v1/subscription_schedules/{schedule}/cancel")
def cancel(call: Call, schedule: str) -> dict[str, Any]:
    sched = _get(call, schedule)
    if sched["status"] not in LIVE:
        raise InvalidRequestError(f"You cannot cancel a subscription schedule that is "
                                  f"{sched['status']}.")
    p = call.params
    invoice_now = as_bool(p.get("invoice_now", True), "invoice_now")
    prorate = as_bool(p.get("prorate", True), "prorate")
    sub = call.store.get("subscription", sched["subscription"] or "")
    at = call.now(sub.get("test_clock") if sub else None)
    sched["status"] = "canceled"
    sched["canceled_at"] = at
    _refresh_current(sched)
    if sub is not None and sub["status"] not in state.ENDED:
        sub["_schedule_ending"] = True
        try:
            state.end_subscription(call.sandbox, sub, at, reason="cancellation_requested",
                                   request=call, invoice_now=invoice_now, prorate=prorate)
        finally:
            sub.pop("_schedule_ending", None)
    call.sandbox.emit("subscription_schedule.canceled", sched, request=call)
    due.touch(call.sandbox, sched)
    return sched
