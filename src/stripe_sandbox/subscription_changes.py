"""Changing a subscription mid-period: item swaps and quantities, prorations, billing anchor
resets, and previews of what a change would bill.

A change is first planned (validated, amounts worked out, nothing stored), so a request that
must fail — an unknown price, a declined card under `error_if_incomplete` — fails before
anything is written; the same plan feeds `POST /v1/invoices/create_preview`.

Prorations follow Stripe's rule, by the second: for each licensed item whose price or quantity
changes at time `t` in the period [s, e), a credit of the old line's exact full-period amount
times (e - t) / (e - s) ("Unused time on ...") and a charge of the new one's times the same
fraction ("Remaining time on ..."), each rounded to the cent. Metered items are billed from the
meter and never prorated. With `billing_cycle_anchor=now` the period restarts at `t`: every
licensed item is credited its unused time and billed in full for the new period, and metered
usage up to `t` is billed at once.

Metered prices that leave an item mid-period (a price swap, or the item deleted) follow Stripe's
"Manage your usage-based billing setup" page (docs.stripe.com,
billing/subscriptions/usage-based/manage-billing-setup, section "Update prices mid-cycle"),
which depends on the subscription's billing mode (flexible is the default for subscriptions
created at API version 2025-09-30.clover and later: changelog "Makes flexible billing mode the
default for new subscriptions"):
- `flexible`: at the change Stripe creates an invoice item billing the usage reported under the
  old price, from the later of the period's start and the price's own start up to `t`, priced
  with the old price (its own tiers, in full: nothing carries over to the new price). It
  follows `proration_behavior`: `always_invoice` puts it on the invoice made at the change,
  `create_prorations` leaves it pending for the next invoice, `none` does not bill it.
- `classic`: the usage before the change is not billed at all.
Either way the new price bills, at the period's end, only the usage from `t` on (an item added
mid-period likewise), so no unit is billed twice and every unit meets exactly one price's
tiers. The usage invoice item is not a proration (`proration=false` on its line).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import invoicing, schedule
from .billing_math import exact_amount, line_amount, prorated_amount
from .errors import InvalidRequestError
from .subscription_state import (
    _quantity_text,
    cycle_anchor,
    cycle_lines,
    draft_invoice,
    interval,
    is_metered,
    item_description,
    items_of,
    new_item,
    period,
    plan_of,
    product_name,
    set_items,
    set_period,
    usage,
)
from .wire import as_bool, as_int, merge_metadata

if TYPE_CHECKING:
    from .engine import Call, Sandbox

MAX_ITEMS = 20


@dataclass
class Target:
    """One item as it will be after the change."""

    source: dict[str, Any] | None  # the existing item, None for a new one
    price: dict[str, Any]
    quantity: int | None
    metadata: dict[str, str]
    item_id: str  # the existing item's id, or the id the new item will get


@dataclass
class Proration:
    item_id: str
    price: dict[str, Any]
    quantity: int | None
    amount: int
    description: str
    span: tuple[int, int]
    proration: bool = True  # False: usage of a metered price that left the item
    usage: Decimal | None = None  # that usage's quantity


@dataclass
class Plan:
    at: int
    targets: list[Target]
    removed: list[dict[str, Any]] = field(default_factory=list)
    prorations: list[Proration] = field(default_factory=list)
    reset_anchor: bool = False
    invoice_now: bool = False


# --- parsing items ---------------------------------------------------------------------------


def recurring_price(sandbox: Sandbox, price_id: Any, param: str) -> dict[str, Any]:
    price = sandbox.store.get("price", price_id) if isinstance(price_id, str) else None
    if price is None:
        raise InvalidRequestError(f"No such price: '{price_id}'", param=param,
                                  code="resource_missing")
    if price.get("type") != "recurring" or not price.get("recurring"):
        raise InvalidRequestError(
            f"The price specified is set to `type=one_time` but this field only accepts prices "
            f"with `type=recurring`: {price['id']}.", param=param)
    return price


def parse_items(sandbox: Sandbox, sub: dict[str, Any] | None, raw: Any,
                param: str = "items", new_price_active: bool = True) -> Plan:
    """Targets for the items after the change (`items[n][id|price|quantity|deleted]`)."""
    from .wire import as_list

    existing = {item["id"]: item for item in (items_of(sub) if sub else [])}
    targets: dict[str, Target] = {
        item_id: Target(item, item["price"], item["quantity"], dict(item["metadata"]), item_id)
        for item_id, item in existing.items()
    }
    added: list[Target] = []
    removed: list[dict[str, Any]] = []
    for i, entry in enumerate(as_list(raw, param)):
        name = f"{param}[{i}]"
        if not isinstance(entry, dict):
            raise InvalidRequestError("Invalid object", param=name,
                                      code="parameter_invalid_object")
        if entry.get("price_data") or entry.get("plan"):
            raise InvalidRequestError(
                "The sandbox supports `price` on subscription items, not `price_data` or "
                "`plan`; create the price first.", param=f"{name}[price_data]")
        item_id = entry.get("id")
        if item_id:
            if item_id not in existing:
                raise InvalidRequestError(f"No such subscription item: '{item_id}'",
                                          param=f"{name}[id]", code="resource_missing")
            target = targets[item_id]
            if as_bool(entry.get("deleted", False), f"{name}[deleted]"):
                removed.append(existing[item_id])
                del targets[item_id]
                continue
        else:
            if not entry.get("price"):
                raise InvalidRequestError(f"Missing required param: {name}[price].",
                                          param=f"{name}[price]", code="parameter_missing")
            target = Target(None, {}, None, {}, sandbox.store.new_id("si", 14))
            added.append(target)
        if entry.get("price"):
            price = recurring_price(sandbox, entry["price"], f"{name}[price]")
            if new_price_active and not price.get("active", True) and (
                target.source is None or target.source["price"]["id"] != price["id"]
            ):
                raise InvalidRequestError(
                    f"The price specified is inactive. This field only accepts active prices: "
                    f"{price['id']}.", param=f"{name}[price]")
            target.price = price
        if entry.get("quantity") not in (None, ""):
            if is_metered(target.price):
                raise InvalidRequestError(
                    f"Quantity should not be specified where usage_type is `metered`. Remove "
                    f"quantity from `{name}`.", param=f"{name}[quantity]")
            quantity = as_int(entry["quantity"], f"{name}[quantity]")
            if quantity < 0:
                raise InvalidRequestError("Quantity must be a non-negative integer.",
                                          param=f"{name}[quantity]")
            target.quantity = quantity
        elif target.source is None or is_metered(target.price) != is_metered(
            target.source["price"]
        ):
            target.quantity = None if is_metered(target.price) else 1
        if "metadata" in entry:
            target.metadata = merge_metadata(target.metadata, entry["metadata"],
                                             f"{name}[metadata]")
    plan = Plan(at=0, targets=list(targets.values()) + added, removed=removed)
    _check_items(plan.targets, param)
    return plan


def _check_items(targets: list[Target], param: str) -> None:
    if not targets:
        raise InvalidRequestError("A subscription must have at least one item.", param=param)
    if len(targets) > MAX_ITEMS:
        raise InvalidRequestError(f"A subscription can have at most {MAX_ITEMS} items.",
                                  param=param)
    seen: set[str] = set()
    first = targets[0].price
    for target in targets:
        price = target.price
        if price["id"] in seen:
            raise InvalidRequestError(
                f"Cannot add multiple subscription items with the same price: {price['id']}.",
                param=param)
        seen.add(price["id"])
        if price["currency"] != first["currency"]:
            raise InvalidRequestError(
                "All prices on a subscription must have the same currency.", param=param)
        a, b = price["recurring"], first["recurring"]
        if (a["interval"], a["interval_count"]) != (b["interval"], b["interval_count"]):
            raise InvalidRequestError(
                "All prices on a subscription must have the same `recurring.interval` and "
                "`recurring.interval_count`.", param=param)


# --- planning --------------------------------------------------------------------------------


def _credit(sandbox: Sandbox, item_id: str, price: dict[str, Any], quantity: int | None,
            at: int, span: tuple[int, int]) -> Proration | None:
    amount = -prorated_amount(exact_amount(price, quantity or 0), span[0], span[1], at, span[1])
    if amount == 0:
        return None
    who = product_name(sandbox, price)
    if quantity not in (None, 1):
        who = f"{_quantity_text(quantity)} × {who}"
    return Proration(item_id, price, quantity, amount,
                     f"Unused time on {who} after {schedule.format_day(at)}", (at, span[1]))


def _debit(sandbox: Sandbox, item_id: str, price: dict[str, Any], quantity: int | None,
           at: int, span: tuple[int, int]) -> Proration | None:
    amount = prorated_amount(exact_amount(price, quantity or 0), span[0], span[1], at, span[1])
    if amount == 0:
        return None
    who = product_name(sandbox, price)
    if quantity not in (None, 1):
        who = f"{_quantity_text(quantity)} × {who}"
    return Proration(item_id, price, quantity, amount,
                     f"Remaining time on {who} after {schedule.format_day(at)}", (at, span[1]))


def plan_prorations(sandbox: Sandbox, sub: dict[str, Any], plan: Plan, behavior: str) -> None:
    """Fill `plan.prorations` for a change at `plan.at` (none while trialing)."""
    plan.prorations = []
    span = period(sub)
    if behavior == "none" or sub["status"] == "trialing" or not span[0] <= plan.at < span[1]:
        return
    for target in plan.targets:
        old = target.source
        changed = old is None or old["price"]["id"] != target.price["id"] or (
            old["quantity"] != target.quantity)
        if not changed and not plan.reset_anchor:
            continue
        if old is not None and not is_metered(old["price"]):
            plan.prorations.append(_credit(sandbox, target.item_id, old["price"],
                                           old["quantity"], plan.at, span))
        if not plan.reset_anchor and not is_metered(target.price):
            plan.prorations.append(_debit(sandbox, target.item_id, target.price,
                                          target.quantity, plan.at, span))
        if old is not None and is_metered(old["price"]) and \
                old["price"]["id"] != target.price["id"]:
            plan.prorations.append(_usage_until(sandbox, sub, old, plan.at, span))
    for old in plan.removed:
        if not is_metered(old["price"]):
            plan.prorations.append(_credit(sandbox, old["id"], old["price"], old["quantity"],
                                           plan.at, span))
        else:
            plan.prorations.append(_usage_until(sandbox, sub, old, plan.at, span))
    plan.prorations = [p for p in plan.prorations if p is not None]


def _usage_until(sandbox: Sandbox, sub: dict[str, Any], item: dict[str, Any], at: int,
                 span: tuple[int, int]) -> Proration | None:
    """The invoice item for the usage of a metered price that leaves `item` at `at` (flexible
    billing mode; see the module docstring): none in classic mode."""
    if (sub.get("billing_mode") or {}).get("type") == "classic":
        return None
    since = max(span[0], int(item.get("_usage_since") or span[0]))
    price = item["price"]
    quantity = usage(sandbox, sub["customer"], price, (since, at))
    if quantity == 0:  # nothing was reported: no item (the sandbox's reading; Stripe is silent)
        return None
    return Proration(item["id"], price, None, line_amount(price, quantity),
                     item_description(sandbox, price, quantity), (since, at), proration=False,
                     usage=quantity)


def immediate_total(sandbox: Sandbox, sub: dict[str, Any], plan: Plan) -> int:
    """What the invoice made now by this change would come to (before any balance)."""
    total = sum(p.amount for p in plan.prorations)
    total += sum(item["amount"] for item in invoicing.pending_items(
        sandbox, sub["customer"], sub["id"], customer_level=False))
    if plan.reset_anchor:
        lines = cycle_lines(sandbox, sub, None, licensed=_reset_span(sub, plan.at),
                            metered=(period(sub)[0], plan.at),
                            items=_preview_items(sandbox, sub, plan), preview=True)
        total += sum(line["amount"] for line in lines)
    return total


def _reset_span(sub: dict[str, Any], at: int) -> tuple[int, int]:
    unit, count = interval(sub)
    return at, schedule.boundary(at, unit, count, 1)


def _preview_items(sandbox: Sandbox, sub: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    """Item objects as they would be after the change (new ones with provisional ids)."""
    items = []
    for target in plan.targets:
        if target.source is not None:
            item = dict(target.source)
            if item["price"]["id"] != target.price["id"]:
                item["_usage_since"] = plan.at
            item["price"] = target.price
            item["quantity"] = target.quantity
        else:
            item = new_item(sandbox, sub["id"], target.price, target.quantity, plan.at,
                            item_id=target.item_id)
            item["_usage_since"] = plan.at
        items.append(item)
    return items


# --- committing ------------------------------------------------------------------------------


def commit(sandbox: Sandbox, sub: dict[str, Any], plan: Plan, request: Call | None) -> None:
    """Write the item changes and the proration invoice items."""
    items = []
    for target in plan.targets:
        item = target.source
        if item is None:
            item = new_item(sandbox, sub["id"], target.price, target.quantity, plan.at,
                            target.metadata, item_id=target.item_id)
            item["_usage_since"] = plan.at
        else:
            if item["price"]["id"] != target.price["id"]:
                item["price"] = copy.deepcopy(target.price)
                item["plan"] = plan_of(target.price)
                item["_usage_since"] = plan.at  # the new price meets usage from here on
            item["quantity"] = target.quantity
            item["metadata"] = target.metadata
        items.append(item)
    set_items(sub, items)
    start, end = period(sub)
    set_period(sub, start, end)
    create_proration_items(sandbox, sub, plan.prorations, plan.at, request)


def create_proration_items(sandbox: Sandbox, sub: dict[str, Any], prorations: list[Proration],
                           at: int, request: Call | None) -> list[dict[str, Any]]:
    from .resources.invoiceitems import new_invoiceitem, save_invoiceitem

    customer = sandbox.store.get("customer", sub["customer"]) or {"id": sub["customer"]}
    made = []
    for p in prorations:
        item = new_invoiceitem(
            sandbox, customer, at, amount=p.amount, currency=p.price["currency"],
            description=p.description, span=p.span,
            quantity=p.usage if p.usage is not None else Decimal(p.quantity or 1),
            price=p.price, unit_amount_decimal=None if p.usage is not None
            else Decimal(p.price.get("unit_amount_decimal") or 0),
            subscription_id=sub["id"], subscription_item_id=p.item_id or None,
            proration=p.proration,
        )
        save_invoiceitem(sandbox, item, request)
        made.append(item)
    return made


def credit_unused(sandbox: Sandbox, sub: dict[str, Any], items: list[dict[str, Any]], at: int,
                  request: Call | None) -> list[dict[str, Any]]:
    """Credits for the unused licensed time of `items` (cancel with `prorate=true`)."""
    span = period(sub)
    credits = [_credit(sandbox, item["id"], item["price"], item["quantity"], at, span)
               for item in items if not is_metered(item["price"])]
    return create_proration_items(sandbox, sub, [c for c in credits if c], at, request)


def invoice_now(sandbox: Sandbox, sub: dict[str, Any], plan: Plan, old_span: tuple[int, int],
                request: Call | None, collect: bool) -> dict[str, Any] | None:
    """The `subscription_update` invoice of `always_invoice` or an anchor reset, finalized and
    charged at once (none when there is nothing to bill, e.g. a change during a trial)."""
    at = plan.at
    invoice = draft_invoice(sandbox, sub, at, "subscription_update", (old_span[0], at),
                            customer_level_items=False)
    if plan.reset_anchor:
        invoicing.add_lines(invoice, cycle_lines(sandbox, sub, invoice, licensed=period(sub),
                                                 metered=(old_span[0], at)))
    if not invoice["lines"]["data"]:
        return None
    invoicing.save_new(sandbox, invoice, request)
    sub["latest_invoice"] = invoice["id"]
    invoicing.finalize(sandbox, invoice, at, request, collect=collect)
    return invoice


def reset_period(sub: dict[str, Any], at: int) -> None:
    sub["billing_cycle_anchor"] = at
    sub.pop("_cycle_reference", None)
    start, end = _reset_span(sub, at)
    set_period(sub, start, end)


# --- previews --------------------------------------------------------------------------------


def preview_lines(sandbox: Sandbox, sub: dict[str, Any], plan: Plan,
                  invoice: dict[str, Any]) -> None:
    """Lines of the invoice the change leads to: now (always_invoice / anchor reset) or at the
    next renewal (pending items, prorations, usage to date, the next period)."""
    customer_level = not plan.invoice_now
    pending = invoicing.pending_items(sandbox, sub["customer"], sub["id"], customer_level)
    lines = [invoicing.line_from_invoiceitem(sandbox, invoice, item, preview=True)
             for item in pending]
    for p in plan.prorations:
        lines.append(invoicing.new_line(
            sandbox, invoice, amount=p.amount, description=p.description, period=p.span,
            quantity=p.usage if p.usage is not None else Decimal(p.quantity or 1), pricing={
                "type": "price_details",
                "price_details": {"price": p.price["id"], "product": p.price.get("product")},
                "unit_amount_decimal": p.price.get("unit_amount_decimal")},
            parent=invoicing.line_parent(sub["id"], p.item_id or None, None, p.proration),
            subscription_id=sub["id"], currency=p.price["currency"], discountable=False,
            preview=True))
    items = _preview_items(sandbox, sub, plan)
    start, end = period(sub)
    unit, count = interval(sub)
    if plan.reset_anchor:
        lines += cycle_lines(sandbox, sub, invoice, licensed=_reset_span(sub, plan.at),
                             metered=(start, plan.at), items=items, preview=True)
    elif not plan.invoice_now:
        if sub["status"] == "trialing":
            trial_end = int(sub["trial_end"])
            first = (trial_end, schedule.boundary(trial_end, unit, count, 1))
            lines += cycle_lines(sandbox, sub, invoice, licensed=first, metered=None,
                                 items=items, preview=True)
        else:
            following = (end, schedule.next_boundary(cycle_anchor(sub), unit, count, end))
            lines += cycle_lines(sandbox, sub, invoice, licensed=following,
                                 metered=(start, end), items=items, preview=True)
    invoicing.add_lines(invoice, lines)
