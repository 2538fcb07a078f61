"""What a subscription's draft invoice should say, from meterbill's own records alone, and how
it differs from what Stripe drafted. Pure: no Stripe, no database, no clock.

The expected invoice of a renewal (or a trial's end) holds the base price of the plan in force
for the new period, billed in advance, and, for each plan the ended period was on, the metered
line: the period's deduplicated usage under that plan, priced through the plan's graduated
tiers (the included units at 0, then the overage unit amount), the exact amount rounded once
to a cent, half up, as Stripe rounds a tiered line. Lines are compared by what they bill
(plan and part), with their quantity and amount; a line on one side only is a difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from .money import format_cents, round_cents
from .plans import Plan

Part = Literal["base", "overage", "other"]


@dataclass(frozen=True)
class Segment:
    """Usage of one plan inside the invoiced period: [start, end), `used` units."""

    plan: Plan
    start: datetime
    end: datetime
    used: int


@dataclass(frozen=True)
class InvoiceLine:
    """One line, on either side. `plan` is None for a line meterbill cannot name (a price
    outside the catalog, a one-off item); `label` then says what it is."""

    plan: str | None
    part: Part
    quantity: int
    amount: int  # cents
    start: datetime | None = None
    end: datetime | None = None
    label: str = ""
    proration: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.plan or self.label, self.part)


@dataclass(frozen=True)
class Difference:
    key: tuple[str, str]
    stripe: InvoiceLine | None
    expected: InvoiceLine | None

    @property
    def amount(self) -> int:
        """Stripe's amount minus meterbill's, in cents."""
        return (self.stripe.amount if self.stripe else 0) - (
            self.expected.amount if self.expected else 0)

    @property
    def quantity(self) -> int:
        return (self.stripe.quantity if self.stripe else 0) - (
            self.expected.quantity if self.expected else 0)


@dataclass(frozen=True)
class PriceTier:
    up_to: int | None  # None: the last, unbounded tier
    unit: Decimal  # cents per unit (may be fractional)
    flat: Decimal = Decimal(0)


def tiered_amount(tiers: Sequence[PriceTier], quantity: int, mode: str = "graduated") -> int:
    """A tiered price's line amount for `quantity`, as Stripe computes it: graduated (each
    unit at its tier's price, a tier's flat amount once reached) or volume (every unit at the
    tier the total falls in), the exact sum rounded once to a cent, half up."""
    if quantity <= 0 or not tiers:
        return 0
    if mode == "volume":
        tier = next((t for t in tiers if t.up_to is None or quantity <= t.up_to), tiers[-1])
        return round_cents(quantity * tier.unit + tier.flat)
    total, lower = Decimal(0), 0
    for tier in tiers:
        upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
        if upper > lower:
            total += (upper - lower) * tier.unit + tier.flat
        if tier.up_to is None or quantity <= tier.up_to:
            break
        lower = tier.up_to
    return round_cents(total)


def metered_amount(plan: Plan, used: int) -> int:
    """The metered line's amount: graduated tiers (included units free), rounded once."""
    return plan.overage_cost(used)


def expected_lines(base: Plan | None, base_period: tuple[datetime, datetime] | None,
                   segments: Sequence[Segment]) -> tuple[InvoiceLine, ...]:
    """The lines a renewal draft should hold. `base`: the plan billed in advance for the new
    period (None when nothing is billed in advance: the subscription ends)."""
    lines: list[InvoiceLine] = []
    if base is not None:
        start, end = base_period or (None, None)
        lines.append(InvoiceLine(base.key, "base", 1, base.base_amount, start, end))
    merged: dict[str, InvoiceLine] = {}
    for segment in segments:
        if segment.used < 0:
            raise ValueError("usage cannot be negative")
        found = merged.get(segment.plan.key)
        used = segment.used + (found.quantity if found else 0)
        start = found.start if found else segment.start
        merged[segment.plan.key] = InvoiceLine(segment.plan.key, "overage", used,
                                               metered_amount(segment.plan, used), start,
                                               segment.end)
    # A plan's metered items bill once per period whatever the split; re-price the sums.
    return tuple(lines + list(merged.values()))


def compare(stripe: Iterable[InvoiceLine], expected: Iterable[InvoiceLine],
            tolerance_cents: int = 0) -> tuple[Difference, ...]:
    """Line by line, by (plan, part): quantities must match and amounts agree within
    `tolerance_cents`. Zero-amount lines missing on one side are no difference."""
    theirs = _summed(stripe)
    ours = _summed(expected)
    found = []
    for key in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(key), ours.get(key)
        if a is None and b is not None and b.amount == 0 and b.quantity == 0:
            continue
        if b is None and a is not None and a.amount == 0 and a.quantity == 0:
            continue
        if a is not None and b is not None and a.quantity == b.quantity and abs(
                a.amount - b.amount) <= tolerance_cents:
            continue
        found.append(Difference(key, a, b))
    return tuple(found)


def _summed(lines: Iterable[InvoiceLine]) -> dict[tuple[str, str], InvoiceLine]:
    out: dict[tuple[str, str], InvoiceLine] = {}
    for line in lines:
        seen = out.get(line.key)
        if seen is None:
            out[line.key] = line
            continue
        out[line.key] = InvoiceLine(line.plan, line.part, seen.quantity + line.quantity,
                                    seen.amount + line.amount, seen.start or line.start,
                                    line.end or seen.end, line.label or seen.label,
                                    seen.proration or line.proration)
    return out


# --- rules beyond equality ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewRules:
    """Reasons to hold a draft whose numbers agree. Each is off at its zero/False value."""

    first_invoice: bool = False
    usage_multiple: Decimal = Decimal(0)  # hold above N x the trailing three-month average
    amount_above_cents: int = 0
    proration: bool = False
    credit_balance: bool = False


@dataclass(frozen=True)
class DraftFacts:
    """What the rules look at besides the lines."""

    tenant_id: str
    total: int  # cents, before the customer's balance
    used: int  # metered units this period
    trailing_usage: Sequence[int] = field(default_factory=tuple)  # earlier periods, newest first
    first_invoice: bool = False
    has_proration: bool = False
    balance_applied: int = 0  # cents of credit balance the invoice would take (>= 0)


def rule_reasons(rules: ReviewRules, facts: DraftFacts) -> tuple[str, ...]:
    reasons = []
    if rules.first_invoice and facts.first_invoice:
        reasons.append("first invoice of the tenant")
    trailing = list(facts.trailing_usage)[:3]
    if rules.usage_multiple > 0 and len(trailing) == 3:
        average = Decimal(sum(trailing)) / 3
        if average > 0 and facts.used > rules.usage_multiple * average:
            reasons.append(f"usage {facts.used:,} is above {rules.usage_multiple.normalize()}x "
                           f"the trailing three-period average ({average:,.0f})")
    if rules.amount_above_cents > 0 and facts.total > rules.amount_above_cents:
        reasons.append(f"amount {format_cents(facts.total)} is above "
                       f"{format_cents(rules.amount_above_cents)}")
    if rules.proration and facts.has_proration:
        reasons.append("a proration line is present")
    if rules.credit_balance and facts.balance_applied > 0:
        reasons.append(f"a credit balance of {format_cents(facts.balance_applied)} is applied")
    return tuple(reasons)


# --- the one-line alert --------------------------------------------------------------------------


def describe(tenant_id: str, month: str, differences: Sequence[Difference], metric: str,
             plan_names: dict[str, str], currency: str = "usd") -> str:
    """`t-042, Pro, Nov: Stripe 130,000 queries = $24.00 overage; meterbill 125,000 = $20.00;
    +5,000` — each difference in a clause, separated by ` | `."""
    clauses = []
    for diff in differences:
        name, part = diff.key
        shown = plan_names.get(name, name)
        what = {"base": "base", "overage": "overage"}.get(part, "")
        unit = f" {metric}" if part == "overage" else (" x" if part == "base" else "")
        theirs = (f"Stripe {diff.stripe.quantity:,}{unit} = "
                  f"{format_cents(diff.stripe.amount, currency)} {what}".rstrip()
                  if diff.stripe else "Stripe: no such line")
        ours = (f"meterbill {diff.expected.quantity:,} = "
                f"{format_cents(diff.expected.amount, currency)}"
                if diff.expected else "meterbill: no such line")
        delta = (f"{diff.quantity:+,}" if diff.quantity else
                 f"{'+' if diff.amount >= 0 else '-'}{format_cents(abs(diff.amount), currency)}")
        clauses.append(f"{shown}: {theirs}; {ours}; {delta}")
    return f"{tenant_id}, {month}: " + " | ".join(clauses)
