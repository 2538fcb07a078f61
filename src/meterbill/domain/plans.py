"""Plans and the catalog, loaded from TOML (the packaged `plans.toml` or `PLANS_FILE`).

A plan is a monthly base fee that includes a number of metered units, then a per-unit overage.
In Stripe that is two prices on one product: a licensed base price and a metered overage price
on the billing meter with graduated tiers (`up_to=included` at 0, then `unit_amount_decimal`),
each found by its lookup key (`meterbill_{plan}_base_monthly`, `meterbill_{plan}_overage_monthly`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigurationError, UnknownPlan
from .money import parse_decimal_cents, round_cents

Interval = Literal["month", "year"]
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_EVENT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_CURRENCY = re.compile(r"^[a-z]{3}$")


@dataclass(frozen=True)
class MeterDefinition:
    event_name: str = "queries"
    display_name: str = "Queries"
    # The meter event payload key that carries the quantity.
    value_key: str = "value"


@dataclass(frozen=True)
class PriceDefinition:
    """One Stripe price the catalog wants to exist, found by `lookup_key`."""

    lookup_key: str
    plan_key: str
    usage_type: Literal["licensed", "metered"]
    interval: Interval
    currency: str
    unit_amount: int | None = None  # licensed: whole cents
    included_quantity: int = 0  # metered: units in the free first tier
    overage_unit_amount: Decimal | None = None  # metered: cents per unit after that


@dataclass(frozen=True)
class Plan:
    key: str
    name: str
    base_amount: int  # cents per month
    included_quantity: int  # units per month in the base fee
    overage_unit_amount: Decimal  # cents per unit above the included quantity
    currency: str = "usd"
    meter_event_name: str = "queries"
    annual_base_amount: int | None = None  # cents per year, when an annual price is offered
    description: str | None = None

    @property
    def base_lookup_key(self) -> str:
        return lookup_key(self.key, "base", "month")

    @property
    def overage_lookup_key(self) -> str:
        return lookup_key(self.key, "overage", "month")

    @property
    def product_key(self) -> str:
        """Our identifier for the plan's Stripe product (kept in its metadata)."""
        return f"meterbill_{self.key}"

    def overage_quantity(self, quantity: int) -> int:
        if quantity < 0:
            raise ValueError("quantity must be >= 0")
        return max(0, quantity - self.included_quantity)

    def overage_cost(self, quantity: int) -> int:
        """Cents owed for `quantity` units in one month beyond the base fee, rounded half up."""
        return round_cents(self.overage_quantity(quantity) * self.overage_unit_amount)

    def monthly_total(self, quantity: int) -> int:
        return self.base_amount + self.overage_cost(quantity)

    def prices(self) -> tuple[PriceDefinition, ...]:
        """The Stripe prices this plan needs: monthly base and overage, and annual if offered."""
        defs = [
            PriceDefinition(self.base_lookup_key, self.key, "licensed", "month", self.currency,
                            unit_amount=self.base_amount),
            PriceDefinition(self.overage_lookup_key, self.key, "metered", "month", self.currency,
                            included_quantity=self.included_quantity,
                            overage_unit_amount=self.overage_unit_amount),
        ]
        if self.annual_base_amount is not None:
            # A year includes twelve months of units; overage is billed once, at year end.
            defs += [
                PriceDefinition(lookup_key(self.key, "base", "year"), self.key, "licensed",
                                "year", self.currency, unit_amount=self.annual_base_amount),
                PriceDefinition(lookup_key(self.key, "overage", "year"), self.key, "metered",
                                "year", self.currency,
                                included_quantity=self.included_quantity * 12,
                                overage_unit_amount=self.overage_unit_amount),
            ]
        return tuple(defs)


def lookup_key(plan_key: str, part: Literal["base", "overage"], interval: Interval) -> str:
    suffix = "monthly" if interval == "month" else "yearly"
    return f"meterbill_{plan_key}_{part}_{suffix}"


@dataclass(frozen=True)
class Catalog:
    plans: tuple[Plan, ...]
    meter: MeterDefinition = MeterDefinition()

    def __post_init__(self) -> None:
        if not self.plans:
            raise ConfigurationError("The plan catalog is empty: define at least one plan.")
        keys = [p.key for p in self.plans]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ConfigurationError(f"Duplicate plan keys in the catalog: {duplicates}")
        for plan in self.plans:
            if plan.meter_event_name != self.meter.event_name:
                raise ConfigurationError(
                    f"Plan {plan.key!r} meters {plan.meter_event_name!r} but the catalog's "
                    f"meter is {self.meter.event_name!r}"
                )

    def __iter__(self) -> Iterator[Plan]:
        return iter(self.plans)

    def keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.plans)

    def get(self, key: str) -> Plan:
        """The plan called `key`; `UnknownPlan` (400, lists the valid keys) otherwise."""
        for plan in self.plans:
            if plan.key == key:
                return plan
        raise UnknownPlan(key, self.keys())

    def price_definitions(self) -> tuple[PriceDefinition, ...]:
        return tuple(d for plan in self.plans for d in plan.prices())

    def plan_for_lookup_key(self, key: str) -> Plan | None:
        for plan in self.plans:
            if any(d.lookup_key == key for d in plan.prices()):
                return plan
        return None


def parse_catalog(data: Mapping[str, Any], *, source: str = "plans file") -> Catalog:
    """Build a Catalog from parsed TOML, with errors that name the file and the bad field."""
    meter_data = data.get("meter", {})
    if not isinstance(meter_data, Mapping):
        raise ConfigurationError(f"{source}: [meter] must be a table")
    event_name = str(meter_data.get("event_name", "queries"))
    if not _EVENT_NAME.match(event_name):
        raise ConfigurationError(f"{source}: meter.event_name {event_name!r} is not valid")
    meter = MeterDefinition(
        event_name=event_name,
        display_name=str(meter_data.get("display_name", event_name.capitalize())),
        value_key=str(meter_data.get("value_key", "value")),
    )
    plans_data = data.get("plans")
    if not isinstance(plans_data, Mapping) or not plans_data:
        raise ConfigurationError(f"{source}: no [plans.<key>] tables found")
    plans = tuple(
        _parse_plan(key, value, meter.event_name, source) for key, value in plans_data.items()
    )
    return Catalog(plans=plans, meter=meter)


_PLAN_FIELDS = {"name", "description", "monthly_base_cents", "included_quantity",
                "overage_unit_amount_cents", "currency", "annual_base_cents"}


def _parse_plan(key: str, raw: Any, event_name: str, source: str) -> Plan:
    where = f"{source}: plans.{key}"
    if not _KEY.match(key):
        raise ConfigurationError(
            f"{where}: a plan key must be lower-case letters, digits and _ (at most 40)"
        )
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{where} must be a table")
    unknown = sorted(set(raw) - _PLAN_FIELDS)
    if unknown:
        raise ConfigurationError(f"{where}: unknown field(s) {unknown}; allowed: "
                                 f"{sorted(_PLAN_FIELDS)}")
    for required in ("name", "monthly_base_cents", "included_quantity",
                     "overage_unit_amount_cents"):
        if required not in raw:
            raise ConfigurationError(f"{where}: missing {required}")
    try:
        overage = parse_decimal_cents(raw["overage_unit_amount_cents"],
                                      what="overage_unit_amount_cents")
    except ValueError as error:
        raise ConfigurationError(f"{where}: {error}") from None
    annual = raw.get("annual_base_cents")
    currency = str(raw.get("currency", "usd"))
    if not _CURRENCY.match(currency):
        raise ConfigurationError(f"{where}: currency must be a lower-case ISO code like usd")
    return Plan(
        key=key,
        name=_text(raw["name"], f"{where}.name"),
        base_amount=_cents(raw["monthly_base_cents"], f"{where}.monthly_base_cents"),
        included_quantity=_cents(raw["included_quantity"], f"{where}.included_quantity"),
        overage_unit_amount=overage,
        currency=currency,
        meter_event_name=event_name,
        annual_base_amount=None if annual is None else _cents(annual,
                                                              f"{where}.annual_base_cents"),
        description=None if raw.get("description") is None else str(raw["description"]),
    )


def _cents(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{where} must be a whole number >= 0, got {value!r}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{where} must be a non-empty string")
    return value


def load_catalog(path: Path | None = None) -> Catalog:
    """Load `path`, or the `plans.toml` shipped inside the package when `path` is None."""
    if path is None:
        text = resources.files("meterbill").joinpath("plans.toml").read_text(encoding="utf-8")
        source = "plans.toml (packaged)"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigurationError(f"Cannot read PLANS_FILE {path}: {error.strerror}") from None
        source = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{source} is not valid TOML: {error}") from None
    return parse_catalog(data, source=source)


Direction = Literal["upgrade", "downgrade", "same"]


def plan_change_direction(current: Plan, target: Plan) -> Direction:
    """Upgrade or downgrade, judged by the monthly base price.

    Equal base prices compare by included quantity, then by overage price (cheaper overage is
    more generous), so every distinct pair of plans has a direction.
    """
    if current.key == target.key:
        return "same"
    ours = (current.base_amount, current.included_quantity, -current.overage_unit_amount)
    theirs = (target.base_amount, target.included_quantity, -target.overage_unit_amount)
    return "upgrade" if theirs >= ours else "downgrade"
