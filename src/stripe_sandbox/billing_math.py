"""Money maths for invoice lines, as Stripe computes it. Pure functions, `Decimal` throughout.

Amounts are in the currency's minor unit (cents). Prices may carry sub-cent unit amounts
(`unit_amount_decimal="0.08"`), so every line is computed exactly and rounded once, to a whole
cent, when it becomes a line amount:

- a per-unit line is `unit_amount_decimal * quantity`, rounded;
- a tiered line is the exact sum over its tiers (graduated) or the one tier the quantity falls
  in (volume), flat amounts included, rounded once for the line;
- a proration is the line's exact full-period amount times `seconds left / seconds in period`
  (Stripe prorates "down to the second"), rounded per prorated line.

Rounding is half away from zero (`ROUND_HALF_UP` in `decimal`'s terms). Stripe's docs say amounts
are rounded to the nearest cent without naming a tie rule; half-away-from-zero is our reading, and
it makes a credit line the exact mirror of the matching debit line (-0.5 → -1 as 0.5 → 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

ZERO = Decimal(0)


def to_cents(value: Decimal) -> int:
    """Round an exact amount to whole cents, half away from zero."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _dec(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(frozen=True)
class Tier:
    up_to: int | None  # None: the last, unbounded tier ("inf")
    unit: Decimal
    flat: Decimal


def tiers_of(raw: Sequence[Mapping[str, Any]]) -> list[Tier]:
    """Tiers in Stripe's shape (`unit_amount_decimal` preferred over `unit_amount`)."""
    tiers = []
    for t in raw:
        up_to = t.get("up_to")
        unit = _dec(t.get("unit_amount_decimal"))
        if unit is None:
            unit = _dec(t.get("unit_amount")) or ZERO
        flat = _dec(t.get("flat_amount_decimal"))
        if flat is None:
            flat = _dec(t.get("flat_amount")) or ZERO
        tiers.append(Tier(None if up_to in (None, "inf") else int(up_to), unit, flat))
    return tiers


def graduated_amount(tiers: Sequence[Tier], quantity: Decimal) -> Decimal:
    """Each unit is priced by the tier it falls in; a tier's flat amount is charged once the
    quantity reaches into that tier."""
    total, lower = ZERO, 0
    for tier in tiers:
        if quantity <= lower:
            break
        upper = quantity if tier.up_to is None else min(quantity, Decimal(tier.up_to))
        units = upper - lower
        if units > 0:
            total += units * tier.unit + tier.flat
        if tier.up_to is None:
            break
        lower = tier.up_to
    return total


def volume_amount(tiers: Sequence[Tier], quantity: Decimal) -> Decimal:
    """Every unit is priced by the single tier the total quantity falls in."""
    if quantity <= 0:
        return ZERO
    for tier in tiers:
        if tier.up_to is None or quantity <= tier.up_to:
            return quantity * tier.unit + tier.flat
    last = tiers[-1]  # malformed tiers without an unbounded last tier: price by the top one
    return quantity * last.unit + last.flat


def transformed_quantity(quantity: Decimal, transform: Mapping[str, Any] | None) -> Decimal:
    """`transform_quantity`: divide, then round up or down to a whole number."""
    if not transform or not transform.get("divide_by"):
        return quantity
    divided = quantity / Decimal(int(transform["divide_by"]))
    mode = ROUND_CEILING if transform.get("round") == "up" else ROUND_FLOOR
    return divided.quantize(Decimal(1), rounding=mode)


def unit_amount(price: Mapping[str, Any]) -> Decimal | None:
    """The exact per-unit amount of a per-unit price, or None for a tiered one."""
    if price.get("billing_scheme") == "tiered":
        return None
    exact = _dec(price.get("unit_amount_decimal"))
    if exact is None:
        exact = _dec(price.get("unit_amount"))
    return exact if exact is not None else ZERO


def price_tiers(price: Mapping[str, Any]) -> list[Tier]:
    raw = price.get("_tiers")
    if raw is None:
        raw = price.get("tiers") or []
    return tiers_of(raw)


def exact_amount(price: Mapping[str, Any], quantity: Decimal | int) -> Decimal:
    """The unrounded amount for `quantity` units of `price` over one full period."""
    q = quantity if isinstance(quantity, Decimal) else Decimal(quantity)
    if price.get("billing_scheme") == "tiered":
        tiers = price_tiers(price)
        if not tiers:
            return ZERO
        if price.get("tiers_mode") == "volume":
            return volume_amount(tiers, q)
        return graduated_amount(tiers, q)
    unit = unit_amount(price) or ZERO
    return transformed_quantity(q, price.get("transform_quantity")) * unit


def line_amount(price: Mapping[str, Any], quantity: Decimal | int) -> int:
    """The amount of one invoice line, rounded to the cent."""
    return to_cents(exact_amount(price, quantity))


def proration_fraction(period_start: int, period_end: int, start: int, end: int) -> Decimal:
    """The share of a billing period covered by [start, end), by the second."""
    length = period_end - period_start
    if length <= 0:
        return ZERO
    covered = max(0, min(end, period_end) - max(start, period_start))
    return Decimal(covered) / Decimal(length)


def prorated_amount(full: Decimal | int, period_start: int, period_end: int,
                    start: int, end: int) -> int:
    """`full` (the exact amount for the whole period) prorated to [start, end), in cents."""
    exact = full if isinstance(full, Decimal) else Decimal(full)
    return to_cents(exact * proration_fraction(period_start, period_end, start, end))


def invoice_totals(line_amounts: Sequence[int], starting_balance: int = 0) -> dict[str, int]:
    """Totals of an invoice without tax or discounts, after a customer balance.

    A negative `starting_balance` is credit the customer holds; it is used up to the total. A
    negative total (a net credit from prorations) is owed to the customer and becomes balance.
    """
    total = sum(line_amounts)
    after_balance = total + starting_balance
    amount_due = max(after_balance, 0)
    return {
        "subtotal": total,
        "total": total,
        "amount_due": amount_due,
        "ending_balance": min(after_balance, 0),
    }


def format_money(cents: int | Decimal, currency: str = "usd") -> str:
    """`$99.00`, `-$5.50`, or `0.08¢`-style unit amounts as `$0.0008`, for descriptions."""
    value = Decimal(cents) / 100
    sign = "-" if value < 0 else ""
    value = abs(value)
    whole_cents = value == value.quantize(Decimal("0.01"))
    text = f"{value:,.2f}" if whole_cents else f"{value.normalize():,f}"
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency.lower())
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency.upper()}"
