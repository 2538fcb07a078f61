"""Catalog as code: make Stripe's meter, products and prices match the plans file.

Everything is found, never remembered: the meter by its event name, each product by
`metadata.meterbill_plan`, each price by its lookup key. A price whose amounts differ is never
edited (Stripe prices are immutable): a new price takes over the lookup key with
`transfer_lookup_key`, and subscriptions on the old price keep it. Creates carry idempotency
keys derived from the definition (`catalog:{lookup_key}:{hash}`), so a crashed run repeated
makes no twins, and a second run finds everything equal and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from ...domain.money import decimal_str, format_cents, format_unit_amount
from ...domain.plans import Catalog, MeterDefinition, Plan, PriceDefinition
from ...ports.stripe import MeterRecord, PriceRecord, ProductRecord, StripePort, Tier
from ..views import CatalogChange, ChangeAction

PLAN_METADATA_KEY = "meterbill_plan"


def _digest(*parts: object) -> str:
    text = json.dumps([str(p) for p in parts])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_price(definition: PriceDefinition) -> str:
    """`$29.00 per month` or `10,000 queries included, then $0.001 each, per month`."""
    per = f"per {definition.interval}"
    if definition.usage_type == "licensed":
        return f"{format_cents(definition.unit_amount or 0, definition.currency)} {per}"
    unit = format_unit_amount(definition.overage_unit_amount or Decimal(0), definition.currency)
    if definition.included_quantity:
        return f"{definition.included_quantity:,} included, then {unit} each, {per}"
    return f"{unit} each, {per}"


def wanted_tiers(definition: PriceDefinition) -> tuple[Tier, ...]:
    if definition.usage_type != "metered" or definition.included_quantity == 0:
        return ()
    return (Tier(definition.included_quantity, Decimal(0)),
            Tier(None, definition.overage_unit_amount))


def price_differences(definition: PriceDefinition, price: PriceRecord, product_id: str | None,
                      meter_id: str | None) -> list[str]:
    """What makes `price` not the price `definition` asks for (empty: it is that price)."""
    found: list[str] = []

    def check(what: str, have: object, want: object) -> None:
        if have != want:
            found.append(f"{what} {have} -> {want}")

    check("active", price.active, True)
    check("currency", price.currency, definition.currency)
    check("product", price.product_id, product_id)
    check("interval", price.interval, definition.interval)
    check("usage_type", price.usage_type, definition.usage_type)
    if definition.usage_type == "licensed":
        check("unit_amount", price.unit_amount_decimal, Decimal(definition.unit_amount or 0))
        return found
    check("meter", price.meter_id, meter_id)
    tiers = wanted_tiers(definition)
    if tiers:
        check("billing_scheme", price.billing_scheme, "tiered")
        check("tiers_mode", price.tiers_mode, "graduated")
        have = tuple((t.up_to, t.unit_amount_decimal, t.flat_amount_decimal or 0)
                     for t in price.tiers)
        want = tuple((t.up_to, t.unit_amount_decimal, 0) for t in tiers)
        if have != want:
            found.append("tiers " + _tiers_text(price.tiers) + " -> " + _tiers_text(tiers))
    else:
        check("billing_scheme", price.billing_scheme, "per_unit")
        check("unit_amount_decimal", price.unit_amount_decimal, definition.overage_unit_amount)
    return found


def _tiers_text(tiers: tuple[Tier, ...]) -> str:
    parts = [f"{'inf' if t.up_to is None else t.up_to}@"
             f"{decimal_str(t.unit_amount_decimal or Decimal(0))}" for t in tiers]
    return "[" + ", ".join(parts) + "]"


class CatalogSyncService:
    def __init__(self, gateway: StripePort, catalog: Catalog) -> None:
        self.gateway = gateway
        self.catalog = catalog

    def sync(self, dry_run: bool = False) -> list[CatalogChange]:
        """Create or update what differs; with `dry_run`, only report what would change."""
        changes: list[CatalogChange] = []
        meter_id = self._sync_meter(self.catalog.meter, dry_run, changes)
        products = self._sync_products(dry_run, changes)
        definitions = self.catalog.price_definitions()
        existing = self.gateway.prices_by_lookup_key([d.lookup_key for d in definitions])
        for definition in definitions:
            changes.append(self._sync_price(definition, existing.get(definition.lookup_key),
                                            products.get(definition.plan_key), meter_id,
                                            dry_run))
        return changes

    def _sync_meter(self, meter: MeterDefinition, dry_run: bool,
                    changes: list[CatalogChange]) -> str | None:
        found: MeterRecord | None = next(
            (m for m in self.gateway.list_meters()
             if m.event_name == meter.event_name and m.status == "active"), None)
        key = meter.event_name
        if found is None:
            detail = f"billing meter {meter.event_name!r} (sum of {meter.value_key!r})"
            if dry_run:
                changes.append(CatalogChange("create", "meter", key, detail))
                return None
            created = self.gateway.create_meter(
                meter, idempotency_key=f"catalog:meter:{key}:{_digest(meter)}")
            changes.append(CatalogChange("create", "meter", key, detail, created.id))
            return created.id
        if found.display_name != meter.display_name:
            detail = f"display_name {found.display_name!r} -> {meter.display_name!r}"
            if not dry_run:
                self.gateway.update_meter(
                    found.id, meter.display_name,
                    idempotency_key=f"catalog:meter:{key}:{found.id}:{_digest(meter)}")
            changes.append(CatalogChange("update", "meter", key, detail, found.id))
        else:
            changes.append(CatalogChange("unchanged", "meter", key, "billing meter", found.id))
        return found.id

    def _sync_products(self, dry_run: bool,
                       changes: list[CatalogChange]) -> dict[str, str | None]:
        by_plan: dict[str, ProductRecord] = {}
        # Active products first, so an archived twin never shadows the live one.
        for product in sorted(self.gateway.list_products(), key=lambda p: not p.active):
            plan_key = product.metadata.get(PLAN_METADATA_KEY)
            if plan_key and plan_key not in by_plan:
                by_plan[plan_key] = product
        ids: dict[str, str | None] = {}
        for plan in self.catalog:
            ids[plan.key] = self._sync_product(plan, by_plan.get(plan.key), dry_run, changes)
        return ids

    def _sync_product(self, plan: Plan, found: ProductRecord | None, dry_run: bool,
                      changes: list[CatalogChange]) -> str | None:
        metadata = {PLAN_METADATA_KEY: plan.key}
        key = plan.product_key
        digest = _digest(plan.name, plan.description, plan.key)
        if found is None:
            if dry_run:
                changes.append(CatalogChange("create", "product", key, f"product {plan.name!r}"))
                return None
            created = self.gateway.create_product(
                name=plan.name, description=plan.description, metadata=metadata,
                idempotency_key=f"catalog:product:{plan.key}:{digest}")
            changes.append(CatalogChange("create", "product", key, f"product {plan.name!r}",
                                         created.id))
            return created.id
        diffs = []
        if found.name != plan.name:
            diffs.append(f"name {found.name!r} -> {plan.name!r}")
        if (found.description or None) != plan.description:
            diffs.append(f"description {found.description!r} -> {plan.description!r}")
        if not diffs:
            changes.append(CatalogChange("unchanged", "product", key, f"product {plan.name!r}",
                                         found.id))
            return found.id
        if not dry_run:
            self.gateway.update_product(
                found.id, name=plan.name, description=plan.description, metadata=metadata,
                idempotency_key=f"catalog:product:{plan.key}:{found.id}:{digest}")
        changes.append(CatalogChange("update", "product", key, "; ".join(diffs), found.id))
        return found.id

    def _sync_price(self, definition: PriceDefinition, found: PriceRecord | None,
                    product_id: str | None, meter_id: str | None,
                    dry_run: bool) -> CatalogChange:
        key = definition.lookup_key
        summary = describe_price(definition)
        action: ChangeAction
        if found is None:
            action = "create"
            detail = summary
        else:
            diffs = price_differences(definition, found, product_id, meter_id)
            if not diffs:
                return CatalogChange("unchanged", "price", key, summary, found.id)
            action = "transfer_lookup_key"
            detail = (f"{summary}: new price replaces {found.id} ({'; '.join(diffs)}); "
                      "existing subscriptions keep the old price")
        if dry_run or product_id is None:
            return CatalogChange(action, "price", key, detail)
        # The replaced price's id is in the key: changing A -> B -> A makes a third price.
        digest = _digest(definition, product_id, meter_id, found.id if found else None)
        created = self.gateway.create_price(
            definition, product_id=product_id,
            meter_id=meter_id if definition.usage_type == "metered" else None,
            transfer_lookup_key=found is not None,
            idempotency_key=f"catalog:{key}:{digest}")
        return CatalogChange(action, "price", key, detail, created.id)
