"""Subscriptions over time: periods, trials, renewals, payment outcomes, expiry, cancellation.

How statuses move, as Stripe documents them:
- created with a trial → `trialing` (a $0 invoice, paid at once); at `trial_end` → `active` and
  a `subscription_cycle` invoice for the first paid period is drafted (finalized an hour later);
- created without a trial → the first invoice is finalized and charged at once: paid →
  `active`; failed (or `default_incomplete`, not attempted) → `incomplete`, never retried, and
  after 23 hours unpaid → `incomplete_expired` with the invoice voided;
- at each period end a `subscription_cycle` invoice is drafted: licensed items in advance for the
  new period, metered items in arrears for the period that ended (quantity from the meter, read
  again when the draft is finalized so usage sent in the grace hour counts), pending invoice
  items;
- a failed renewal charge → `past_due`; paying the latest invoice → `active`; after the last
  retry fails → `config.after_final_failure` (`canceled`, `unpaid` or stay `past_due`). An
  `unpaid` subscription keeps drafting invoices that stay drafts (`auto_advance=false`);
- `collection_method=send_invoice`: `active` at once, the first invoice finalized an hour later
  like a renewal's, never charged; unpaid past its `due_date` → `past_due` (with
  `invoice.overdue`), paid → `active` once no invoice of it is overdue. Stripe's later step
  ("cancel or mark unpaid N days after the due date") is the account setting the sandbox keeps at
  "leave it past due";
- `cancel_at_period_end` / `cancel_at` end it at that time (`customer.subscription.deleted`),
  with a final invoice for metered usage when it has metered items.

Metered usage during a trial is not billed: the trial-end invoice has no arrears lines.
"""

from __future__ import annotations

import copy
import weakref
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import invoicing, schedule
from .billing_math import exact_amount, format_money, line_amount, prorated_amount, unit_amount
from .listing import public

if TYPE_CHECKING:
    from .engine import Call, Sandbox

DAY = 86400
INCOMPLETE_SECONDS = 23 * 3600
TRIAL_NOTICE_SECONDS = 3 * DAY
ENDED = ("canceled", "incomplete_expired")


# --- shapes ----------------------------------------------------------------------------------


def is_metered(price: dict[str, Any]) -> bool:
    return (price.get("recurring") or {}).get("usage_type") == "metered"


def plan_of(price: dict[str, Any]) -> dict[str, Any]:
    """The legacy `plan` view of a recurring price, still returned on subscription items."""
    rec = price.get("recurring") or {}
    return {
        "id": price["id"],
        "object": "plan",
        "active": price.get("active", True),
        "amount": price.get("unit_amount"),
        "amount_decimal": price.get("unit_amount_decimal"),
        "billing_scheme": price.get("billing_scheme", "per_unit"),
        "created": price.get("created"),
        "currency": price.get("currency"),
        "interval": rec.get("interval"),
        "interval_count": rec.get("interval_count"),
        "livemode": False,
        "metadata": dict(price.get("metadata") or {}),
        "meter": rec.get("meter"),
        "nickname": price.get("nickname"),
        "product": price.get("product"),
        "tiers_mode": price.get("tiers_mode"),
        "transform_usage": price.get("transform_quantity"),
        "trial_period_days": rec.get("trial_period_days"),
        "usage_type": rec.get("usage_type", "licensed"),
        "_tiers": price.get("_tiers"),
    }


def new_item(sandbox: Sandbox, sub_id: str, price: dict[str, Any], quantity: int | None,
             at: int, metadata: dict[str, str] | None = None,
             span: tuple[int, int] = (0, 0), item_id: str | None = None) -> dict[str, Any]:
    metered = is_metered(price)
    return {
        "id": item_id or sandbox.store.new_id("si", 14),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": at,
        "current_period_end": span[1],
        "current_period_start": span[0],
        "current_trial": None,
        "discounts": [],
        "metadata": dict(metadata or {}),
        "plan": plan_of(price),
        "price": copy.deepcopy(price),
        "quantity": None if metered else (1 if quantity is None else quantity),
        "subscription": sub_id,
        "tax_rates": [],
    }


_FOLLOWING: weakref.WeakSet[Any] = weakref.WeakSet()


def follow_price_changes(sandbox: Sandbox) -> None:
    """Items embed their price (and its `plan` view); Stripe returns the price as it is now,
    so refresh those copies whenever a price changes (`price.updated`: lookup key moved,
    deactivated, renamed). Installed once per sandbox; price updates are rare."""
    if sandbox in _FOLLOWING:
        return
    _FOLLOWING.add(sandbox)

    def on_event(event: dict[str, Any]) -> None:
        if event["type"] != "price.updated":
            return
        price = sandbox.store.get("price", event["data"]["object"]["id"])
        if price is None:
            return
        for sub in sandbox.store.all("subscription"):
            for item in items_of(sub):
                if item["price"]["id"] == price["id"]:
                    item["price"] = copy.deepcopy(price)
                    item["plan"] = plan_of(price)

    sandbox.listeners.append(on_event)


def items_of(sub: dict[str, Any]) -> list[dict[str, Any]]:
    return sub["items"]["data"]


def set_items(sub: dict[str, Any], items: list[dict[str, Any]]) -> None:
    sub["items"]["data"] = items


def period(sub: dict[str, Any]) -> tuple[int, int]:
    return sub["_period"][0], sub["_period"][1]


def set_period(sub: dict[str, Any], start: int, end: int) -> None:
    """Classic billing: every item shares the subscription's current period."""
    sub["_period"] = [start, end]
    for item in items_of(sub):
        item["current_period_start"] = start
        item["current_period_end"] = end


def interval(sub: dict[str, Any]) -> tuple[str, int]:
    return sub["_interval"][0], int(sub["_interval"][1])


def snapshot(sub: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(public(sub))


def emit_updated(sandbox: Sandbox, sub: dict[str, Any], before: dict[str, Any],
                 request: Call | None = None) -> None:
    """`customer.subscription.updated` with the previous values of what changed."""
    if sub.get("_quiet"):  # inside a request that emits one combined event at its end
        return
    after = public(sub)
    previous = {k: v for k, v in before.items() if after.get(k) != v}
    if previous:
        sandbox.emit("customer.subscription.updated", sub, previous, request=request)
    schedule.touch(sandbox, sub)


# --- invoice lines ---------------------------------------------------------------------------


def product_name(sandbox: Sandbox, price: dict[str, Any]) -> str:
    product = sandbox.store.get("product", price.get("product") or "")
    return (product or {}).get("name") or price.get("nickname") or price["id"]


def _interval_text(price: dict[str, Any]) -> str:
    rec = price.get("recurring") or {}
    count, unit = int(rec.get("interval_count") or 1), rec.get("interval") or "month"
    return f"/ {unit}" if count == 1 else f"every {count} {unit}s"


def _quantity_text(quantity: Any) -> str:
    q = Decimal(quantity or 0)
    return str(int(q)) if q == q.to_integral_value() else format(q.normalize(), "f")


def item_description(sandbox: Sandbox, price: dict[str, Any], quantity: Any) -> str:
    name = product_name(sandbox, price)
    unit = unit_amount(price)
    if unit is None:  # tiered: the amount depends on the tiers, not one unit price
        return f"{_quantity_text(quantity)} × {name} (tiered {_interval_text(price)})"
    return (f"{_quantity_text(quantity)} × {name} "
            f"(at {format_money(unit, price['currency'])} {_interval_text(price)})")


def pricing(price: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "price_details",
        "price_details": {"price": price["id"], "product": price.get("product")},
        "unit_amount_decimal": None if price.get("billing_scheme") == "tiered"
        else price.get("unit_amount_decimal"),
    }


def item_line(sandbox: Sandbox, sub: dict[str, Any], invoice: dict[str, Any] | None,
              item: dict[str, Any], quantity: Any, span: tuple[int, int], *,
              amount: int | None = None, description: str | None = None,
              preview: bool = False) -> dict[str, Any]:
    price = item["price"]
    return invoicing.new_line(
        sandbox, invoice,
        amount=line_amount(price, Decimal(quantity or 0)) if amount is None else amount,
        description=description or item_description(sandbox, price, quantity),
        period=span, quantity=quantity, pricing=pricing(price),
        parent=invoicing.line_parent(sub["id"], item["id"], None, False),
        subscription_id=sub["id"], currency=price["currency"], preview=preview,
    )


def usage(sandbox: Sandbox, customer_id: str, price: dict[str, Any],
          span: tuple[int, int]) -> Decimal:
    from .resources import meters

    meter_id = (price.get("recurring") or {}).get("meter")
    if not meter_id or span[1] <= span[0]:
        return Decimal(0)
    return Decimal(meters.usage_total(sandbox, meter_id, customer_id, span[0], span[1]))


def cycle_lines(sandbox: Sandbox, sub: dict[str, Any], invoice: dict[str, Any] | None, *,
                licensed: tuple[int, int] | None, metered: tuple[int, int] | None,
                items: list[dict[str, Any]] | None = None,
                preview: bool = False) -> list[dict[str, Any]]:
    """Licensed items for the `licensed` span (in advance), metered items for the `metered`
    span (in arrears, from the meter)."""
    lines = []
    for item in items if items is not None else items_of(sub):
        price = item["price"]
        if is_metered(price):
            if metered is None:
                continue
            # A price that came onto the item mid-period meets only the usage from then on
            # (subscription_changes: the old price billed what came before).
            since = int(item.get("_usage_since") or metered[0])
            span = (min(max(metered[0], since), metered[1]), metered[1])
            line = item_line(sandbox, sub, invoice, item,
                             usage(sandbox, sub["customer"], price, span), span,
                             preview=preview)
            line["_usage"] = {"price": price["id"], "start": span[0], "end": span[1]}
            lines.append(line)
        elif licensed is not None:
            lines.append(item_line(sandbox, sub, invoice, item, item["quantity"], licensed,
                                   preview=preview))
    return lines


def refresh_usage(sandbox: Sandbox, invoice: dict[str, Any]) -> None:
    """Re-read metered quantities of a draft (usage may arrive in the grace hour)."""
    changed = False
    for line in invoice["lines"]["data"]:
        spec = line.get("_usage")
        price = sandbox.store.get("price", spec["price"]) if spec else None
        if price is None:
            continue
        quantity = usage(sandbox, invoice["customer"], price, (spec["start"], spec["end"]))
        amount = line_amount(price, quantity)
        if amount != line["amount"] or line["quantity_decimal"] != _quantity_text(quantity):
            fresh = invoicing.new_line(
                sandbox, invoice, amount=amount,
                description=item_description(sandbox, price, quantity),
                period=(line["period"]["start"], line["period"]["end"]), quantity=quantity,
                pricing=line["pricing"], parent=line["parent"],
                subscription_id=line["subscription"], currency=line["currency"])
            fresh["id"] = line["id"]
            line.update(fresh)
            changed = True
    if changed:
        invoicing.recompute(invoice)


def first_period_lines(sandbox: Sandbox, sub: dict[str, Any], invoice: dict[str, Any] | None,
                       at: int, prorate: bool, preview: bool = False) -> list[dict[str, Any]]:
    """The creation invoice: licensed items for the first period (prorated when a future
    `billing_cycle_anchor` makes it short), metered items as zero lines."""
    start, end = period(sub)
    unit, count = interval(sub)
    full_start = schedule.boundary(end, unit, count, -1)
    lines = []
    for item in items_of(sub):
        price = item["price"]
        if is_metered(price):
            lines.append(item_line(sandbox, sub, invoice, item, 0, (start, end), preview=preview))
            continue
        if start <= full_start:  # a whole period
            lines.append(item_line(sandbox, sub, invoice, item, item["quantity"], (start, end),
                                   preview=preview))
            continue
        amount = prorated_amount(exact_amount(price, item["quantity"]), full_start, end,
                                 start, end) if prorate else 0
        who = product_name(sandbox, price)
        if item["quantity"] != 1:
            who = f"{_quantity_text(item['quantity'])} × {who}"
        text = f"Remaining time on {who} after {schedule.format_day(start)}"
        lines.append(item_line(sandbox, sub, invoice, item, item["quantity"], (start, end),
                               amount=amount, description=text, preview=preview))
    return lines


def trial_lines(sandbox: Sandbox, sub: dict[str, Any], invoice: dict[str, Any] | None,
                span: tuple[int, int]) -> list[dict[str, Any]]:
    return [
        item_line(sandbox, sub, invoice, item, item["quantity"] or 0, span, amount=0,
                  description=f"Trial period for {product_name(sandbox, item['price'])}")
        for item in items_of(sub)
    ]


def draft_invoice(sandbox: Sandbox, sub: dict[str, Any], at: int, reason: str,
                  span: tuple[int, int], *, customer_level_items: bool = True,
                  auto_advance: bool = True) -> dict[str, Any]:
    """A subscription invoice (not stored) already holding the pending invoice items."""
    customer = sandbox.store.get("customer", sub["customer"]) or {"id": sub["customer"]}
    invoice = invoicing.blank_invoice(sandbox, customer, at, billing_reason=reason,
                                      subscription=sub, period=span, auto_advance=auto_advance,
                                      collection_method=sub["collection_method"])
    if sub["collection_method"] == "send_invoice" and sub.get("days_until_due") is not None:
        invoice["due_date"] = at + int(sub["days_until_due"]) * DAY
    invoice["default_payment_method"] = None
    items = invoicing.pending_items(sandbox, sub["customer"], sub["id"], customer_level_items)
    invoicing.claim_items(sandbox, invoice, items)
    return invoice


# --- lifecycle -------------------------------------------------------------------------------


def start(sandbox: Sandbox, sub: dict[str, Any], at: int, payment_behavior: str,
          prorate_first: bool, request: Call | None) -> dict[str, Any]:
    """The creation invoice and its payment; then `customer.subscription.created`."""
    sub["_quiet"] = True
    trialing = sub["status"] == "trialing"
    invoice = draft_invoice(sandbox, sub, at, "subscription_create", (at, at))
    if trialing:
        invoicing.add_lines(invoice, trial_lines(sandbox, sub, invoice, period(sub)))
    else:
        invoicing.add_lines(invoice, first_period_lines(sandbox, sub, invoice, at, prorate_first))
        invoice["_no_retry"] = True  # an incomplete subscription's first invoice expires instead
    invoicing.save_new(sandbox, invoice, request)
    sub["latest_invoice"] = invoice["id"]
    emailed = not trialing and sub["collection_method"] == "send_invoice"
    if emailed:
        sub["status"] = "active"  # the customer pays the emailed invoice by its due date
    collect = payment_behavior != "default_incomplete"
    if not emailed:  # an emailed first invoice is finalized an hour later, like a renewal's
        invoicing.finalize(sandbox, invoice, at, request, collect=collect)
    del sub["_quiet"]
    if sub["status"] == "incomplete":
        sub["_expires_at"] = at + INCOMPLETE_SECONDS
    sandbox.emit("customer.subscription.created", sub, request=request)
    if trialing:
        arm_trial_notice(sandbox, sub, at, request)
    schedule.touch(sandbox, sub)
    return invoice


def cycle_anchor(sub: dict[str, Any]) -> int:
    """What the period boundaries count from: the anchor, or for a `billing_cycle_anchor_config`
    day the month's length cut short (31 → Feb 28), the last month that holds that day."""
    return int(sub.get("_cycle_reference") or sub["billing_cycle_anchor"])


def arm_trial_notice(sandbox: Sandbox, sub: dict[str, Any], at: int,
                     request: Call | None) -> None:
    """`trial_will_end` three days before the trial ends, or now if that is already past."""
    notice_at = int(sub["trial_end"]) - TRIAL_NOTICE_SECONDS
    if notice_at <= at:
        sub["_trial_notice_at"] = None
        sandbox.emit("customer.subscription.trial_will_end", sub, request=request)
    else:
        sub["_trial_notice_at"] = notice_at


def renew(sandbox: Sandbox, sub: dict[str, Any], at: int) -> None:
    """The period ended at `at`: start the next one and draft its invoice."""
    ended_items = list(items_of(sub))
    if sub.get("schedule"):  # a phase starting at the period end applies before the invoice
        from .resources.subscription_schedules import before_renewal

        before_renewal(sandbox, sub, at)
        if sub["status"] in ENDED:
            return
    start_at, end_at = period(sub)
    if sub["cancel_at_period_end"] or (sub["cancel_at"] is not None and sub["cancel_at"] <= at):
        end_subscription(sandbox, sub, at, reason=None, final_usage=True)
        return
    before = snapshot(sub)
    unit, count = interval(sub)
    set_period(sub, end_at, schedule.next_boundary(cycle_anchor(sub), unit, count, at))
    invoice = draft_invoice(sandbox, sub, at, "subscription_cycle", (start_at, end_at),
                            auto_advance=sub["status"] != "unpaid")
    if [i["price"]["id"] for i in ended_items] == [i["price"]["id"] for i in items_of(sub)]:
        lines = cycle_lines(sandbox, sub, invoice, licensed=period(sub),
                            metered=(start_at, end_at))
    else:  # a new phase: the ended period's usage is billed at the prices it was used under
        lines = cycle_lines(sandbox, sub, invoice, licensed=period(sub), metered=None)
        lines += cycle_lines(sandbox, sub, invoice, licensed=None, metered=(start_at, end_at),
                             items=ended_items)
    invoicing.add_lines(invoice, lines)
    invoicing.save_new(sandbox, invoice)
    sub["latest_invoice"] = invoice["id"]
    emit_updated(sandbox, sub, before)


def end_trial(sandbox: Sandbox, sub: dict[str, Any], at: int,
              request: Call | None = None) -> dict[str, Any] | None:
    """The trial is over at `at`: the first paid period starts and its invoice is drafted."""
    if sub["cancel_at_period_end"] or (sub["cancel_at"] is not None and sub["cancel_at"] <= at):
        end_subscription(sandbox, sub, at, reason=None, request=request)
        return None
    if sub.get("schedule"):  # a phase starting at the trial end applies before the invoice
        from .resources.subscription_schedules import before_renewal

        before_renewal(sandbox, sub, at)
        if sub["status"] in ENDED:
            return None
    before = snapshot(sub)
    trial_start, _ = period(sub)
    missing = (sub.get("trial_settings") or {}).get("end_behavior", {}).get(
        "missing_payment_method", "create_invoice")
    if missing != "create_invoice" and _payment_method(sandbox, sub) is None:
        if missing == "cancel":
            end_subscription(sandbox, sub, at, reason=None, request=request)
            return None
        sub["status"] = "paused"
        emit_updated(sandbox, sub, before, request)
        return None
    sub["status"] = "active"
    sub["trial_end"] = at
    sub["_trial_notice_at"] = None
    sub["billing_cycle_anchor"] = at
    sub.pop("_cycle_reference", None)
    unit, count = interval(sub)
    set_period(sub, at, schedule.boundary(at, unit, count, 1))
    invoice = draft_invoice(sandbox, sub, at, "subscription_cycle", (trial_start, at))
    invoicing.add_lines(invoice, cycle_lines(sandbox, sub, invoice, licensed=period(sub),
                                             metered=None))
    invoicing.save_new(sandbox, invoice, request)
    sub["latest_invoice"] = invoice["id"]
    emit_updated(sandbox, sub, before, request)
    return invoice


def _payment_method(sandbox: Sandbox, sub: dict[str, Any]) -> str | None:
    customer = sandbox.store.get("customer", sub["customer"]) or {}
    return sub.get("default_payment_method") or (
        customer.get("invoice_settings") or {}).get("default_payment_method")


def expire(sandbox: Sandbox, sub: dict[str, Any], at: int) -> None:
    """23 hours `incomplete`: `incomplete_expired`, its open invoice voided."""
    before = snapshot(sub)
    sub["status"] = "incomplete_expired"
    sub["ended_at"] = sub["canceled_at"] = at
    sub["_expires_at"] = None
    invoice = sandbox.store.get("invoice", sub.get("latest_invoice") or "")
    if invoice is not None and invoice["status"] == "open":
        invoicing.void(sandbox, invoice, at)
    emit_updated(sandbox, sub, before)


def end_subscription(sandbox: Sandbox, sub: dict[str, Any], at: int, *, reason: str | None,
                     request: Call | None = None, invoice_now: bool = False,
                     prorate: bool = False, final_usage: bool = False) -> None:
    """Cancel now (or at the period end when called there): `customer.subscription.deleted`.

    `prorate` credits the unused licensed time as pending invoice items; `invoice_now` (and
    `final_usage` when the subscription has metered items) bills pending items and metered
    usage up to `at` on a final invoice.
    """
    start_at, end_at = period(sub)
    running = sub["status"] in ("active", "past_due", "unpaid")
    if prorate and running and at < end_at:
        from .subscription_changes import credit_unused

        credit_unused(sandbox, sub, items_of(sub), at, request)
    has_metered = any(is_metered(item["price"]) for item in items_of(sub))
    if running and (invoice_now or (final_usage and has_metered)):
        invoice = draft_invoice(sandbox, sub, at, "subscription_cycle", (start_at, at),
                                customer_level_items=False)
        # Usage stamped with the very second of cancellation still belongs to this period,
        # but the lines' period ends when the subscription does, as Stripe shows it.
        lines = cycle_lines(sandbox, sub, invoice, licensed=None, metered=(start_at, at + 1))
        for line in lines:
            line["period"]["end"] = min(line["period"]["end"], at)
        invoicing.add_lines(invoice, lines)
        if invoice["lines"]["data"]:
            invoicing.save_new(sandbox, invoice, request)
            sub["latest_invoice"] = invoice["id"]
        else:
            invoicing.release_items(sandbox, invoice, keep_on_invoice=False)
    sub["status"] = "canceled"
    sub["ended_at"] = at
    sub["canceled_at"] = sub["canceled_at"] or at
    if reason is not None or not sub["cancellation_details"]["reason"]:
        sub["cancellation_details"]["reason"] = reason or "cancellation_requested"
    sub["_trial_notice_at"] = None
    invoicing.stop_collection(sandbox, sub["id"])
    sandbox.emit("customer.subscription.deleted", sub, request=request)
    schedule.touch(sandbox, sub)


# --- payment outcomes (called by invoicing) --------------------------------------------------


def invoice_paid(sandbox: Sandbox, sub: dict[str, Any], invoice: dict[str, Any], at: int,
                 request: Call | None) -> None:
    if sub["status"] not in ("incomplete", "past_due", "unpaid"):
        return
    if invoice["collection_method"] == "send_invoice":
        if sub["status"] != "past_due" or _has_overdue(sandbox, sub):
            return
    elif sub.get("latest_invoice") != invoice["id"]:
        return
    before = snapshot(sub)
    sub["status"] = "active"
    sub["_expires_at"] = None
    emit_updated(sandbox, sub, before, request)


def _has_overdue(sandbox: Sandbox, sub: dict[str, Any]) -> bool:
    return any(invoicing.subscription_of(inv) == sub["id"] and invoicing.is_overdue(inv)
               for inv in sandbox.store.all("invoice"))


def invoice_overdue(sandbox: Sandbox, sub: dict[str, Any], invoice: dict[str, Any],
                    at: int) -> None:
    """A send_invoice invoice is unpaid past its due date: the subscription is `past_due`."""
    if sub["status"] != "active":
        return
    before = snapshot(sub)
    sub["status"] = "past_due"
    emit_updated(sandbox, sub, before)


def payment_failed(sandbox: Sandbox, sub: dict[str, Any], invoice: dict[str, Any], at: int,
                   request: Call | None, *, final: bool) -> None:
    if sub["status"] in ("incomplete", *ENDED):
        return
    if invoice["collection_method"] == "send_invoice":
        return  # a declined card on the hosted page leaves the payment terms as they were
    before = snapshot(sub)
    if sub["status"] == "active" and sub.get("latest_invoice") == invoice["id"]:
        sub["status"] = "past_due"
    action = sandbox.config.after_final_failure
    if final and action == "canceled":
        emit_updated(sandbox, sub, before, request)
        end_subscription(sandbox, sub, at, reason="payment_failed", request=request)
        return
    if final and action == "unpaid" and sub["status"] in ("active", "past_due"):
        sub["status"] = "unpaid"
    emit_updated(sandbox, sub, before, request)


# --- the billing clock -----------------------------------------------------------------------


def next_due(sub: dict[str, Any]) -> int | None:
    status = sub["status"]
    if status in ENDED or status == "paused":
        return None
    due = []
    if sub.get("_trial_notice_at"):
        due.append(sub["_trial_notice_at"])
    if status == "trialing":
        due.append(sub["trial_end"])
        if sub["cancel_at"] is not None:
            due.append(sub["cancel_at"])
    elif status == "incomplete":
        if sub.get("_expires_at"):
            due.append(sub["_expires_at"])
    else:
        due.append(period(sub)[1])
        if sub["cancel_at"] is not None:
            due.append(sub["cancel_at"])
    return min(due) if due else None


def process_due(sandbox: Sandbox, sub: dict[str, Any], at: int) -> None:
    for _ in range(8):  # several things can fall due at one instant; each step moves on
        due = next_due(sub)
        if due is None or due > at:
            return
        if sub.get("_trial_notice_at") and sub["_trial_notice_at"] <= at:
            sub["_trial_notice_at"] = None
            sandbox.emit("customer.subscription.trial_will_end", sub)
        elif sub["status"] == "trialing":
            end_trial(sandbox, sub, min(sub["trial_end"], sub["cancel_at"] or sub["trial_end"]))
        elif sub["status"] == "incomplete":
            expire(sandbox, sub, sub["_expires_at"])
        elif sub["cancel_at"] is not None and sub["cancel_at"] < period(sub)[1]:
            end_subscription(sandbox, sub, sub["cancel_at"], reason=None, final_usage=True)
        else:
            renew(sandbox, sub, period(sub)[1])
    raise RuntimeError(f"subscription {sub['id']} did not settle at {at}")


schedule.register("subscription", next_due, process_due)
