"""Prices: per-unit and tiered (graduated, volume), licensed and metered, lookup keys.

Amounts are integer cents or exact decimal strings (`"0.08"` cents). A tiered price keeps its
tiers under the private `_tiers` key, so the engine returns `tiers` only with `expand[]=tiers`,
as Stripe does. Amounts cannot change after creation; make a new price and move the lookup key
with `transfer_lookup_key`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..engine import Call
from ..errors import InvalidRequestError, NotFoundError
from ..listing import created_filter, paginate
from ..router import Routes
from ..store import Store
from ..wire import as_bool, as_decimal, as_int, as_list, decimal_str, merge_metadata
from .common import nullable

routes = Routes()

SEARCH_FIELDS = {"active", "currency", "lookup_key", "metadata", "product", "type"}
INTERVALS = {"day": 365, "week": 52, "month": 12, "year": 1}  # most of each in one year
_IMMUTABLE = ("billing_scheme", "currency", "product", "product_data", "recurring", "tiers",
              "tiers_mode", "transform_quantity", "unit_amount", "unit_amount_decimal",
              "custom_unit_amount", "type")
_MAX_DECIMAL_PLACES = 12


def _invalid(message: str, param: str, code: str | None = None) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


def _missing(param: str) -> InvalidRequestError:
    return InvalidRequestError(f"Missing required param: {param}.", param=param,
                               code="parameter_missing")


def _exclusive(a: str, b: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(f"You may only specify one of these parameters: {a}, {b}.",
                               param=param)


Namer = Callable[[str], str]


def _namer(base: str) -> Namer:
    """Parameter names under `base` as Stripe spells them in errors: `base[field]`."""
    return (lambda field: f"{base}[{field}]") if base else (lambda field: field)


def _amount(spec: dict[str, Any], field: str, name: Namer) -> tuple[int | None, str | None]:
    """`(field, field_decimal)` as Stripe returns them, from one of the two parameters."""
    whole, exact = spec.get(field), spec.get(f"{field}_decimal")
    if whole not in (None, "") and exact not in (None, ""):
        raise _exclusive(field, f"{field}_decimal", name(field))
    if whole not in (None, ""):
        cents = as_int(whole, name(field))
        if cents < 0:
            raise _invalid(f"Invalid non-negative integer: {whole}", name(field),
                           "parameter_invalid_integer")
        return cents, str(cents)
    if exact not in (None, ""):
        param = name(f"{field}_decimal")
        value = as_decimal(exact, param)
        if value < 0:
            raise _invalid(f"Invalid decimal: {exact} must not be negative", param,
                           "parameter_invalid_decimal")
        exponent = value.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > _MAX_DECIMAL_PLACES:
            raise _invalid(f"Invalid decimal: {exact} has more than {_MAX_DECIMAL_PLACES} "
                           "decimal places", param, "parameter_invalid_decimal")
        whole_cents = int(value) if value == value.to_integral_value() else None
        return whole_cents, decimal_str(value)
    return None, None


def _tiers(raw: Any, tiers_param: str) -> list[dict[str, Any]]:
    items = as_list(raw, tiers_param)
    if not items:
        raise _missing(tiers_param)
    tiers: list[dict[str, Any]] = []
    last_bound = 0
    for i, item in enumerate(items):
        param = f"{tiers_param}[{i}]"
        if not isinstance(item, dict):
            raise _invalid("Invalid object", param, "parameter_invalid_object")
        if item.get("up_to") in (None, ""):
            raise _missing(f"{param}[up_to]")
        is_last = i == len(items) - 1
        if item["up_to"] == "inf":
            if not is_last:
                raise _invalid("Only the last tier may have `up_to` set to `inf`.",
                               f"{param}[up_to]")
            up_to = None
        else:
            up_to = as_int(item["up_to"], f"{param}[up_to]")
            if is_last:
                raise _invalid("The last tier must have `up_to` set to `inf`.",
                               f"{param}[up_to]")
            if up_to <= last_bound:
                raise _invalid("Tiers must be given in ascending order of `up_to`, each "
                               "greater than the one before (and than 0).", f"{param}[up_to]")
            last_bound = up_to
        flat, flat_decimal = _amount(item, "flat_amount", _namer(param))
        unit, unit_decimal = _amount(item, "unit_amount", _namer(param))
        if flat_decimal is None and unit_decimal is None:
            raise _invalid("An entry in the tiers array is missing an amount.", param)
        tiers.append({
            "flat_amount": flat,
            "flat_amount_decimal": flat_decimal,
            "unit_amount": unit,
            "unit_amount_decimal": unit_decimal,
            "up_to": up_to,
        })
    return tiers


def _recurring(call: Call, raw: Any, param: str) -> dict[str, Any] | None:
    if raw in (None, ""):
        return None
    if not isinstance(raw, dict):
        raise _invalid("Invalid object", param, "parameter_invalid_object")
    interval = raw.get("interval")
    if interval in (None, ""):
        raise _missing(f"{param}[interval]")
    if interval not in INTERVALS:
        raise _invalid(f"Invalid {param}[interval]: must be one of day, month, week, or year",
                       f"{param}[interval]")
    count = as_int(raw.get("interval_count", 1), f"{param}[interval_count]")
    if count < 1 or count > INTERVALS[interval]:
        raise _invalid("Invalid recurring interval: maximum of one year interval allowed "
                       "(1 year, 12 months, or 52 weeks).", f"{param}[interval_count]")
    usage_type = raw.get("usage_type") or "licensed"
    if usage_type not in ("licensed", "metered"):
        raise _invalid(f"Invalid {param}[usage_type]: must be one of licensed or metered",
                       f"{param}[usage_type]")
    meter_id = nullable(raw.get("meter"))
    if usage_type == "metered" and meter_id is None:
        raise _invalid("Metered prices must be backed by a billing meter: pass "
                       f"`{param}[meter]` with the ID of a meter.", f"{param}[meter]",
                       "parameter_missing")
    if meter_id is not None:
        if usage_type != "metered":
            raise _invalid(f"`{param}[meter]` can only be set when `{param}[usage_type]` is "
                           "`metered`.", f"{param}[meter]")
        if call.store.get("billing.meter", meter_id) is None:
            raise InvalidRequestError(f"No such billing meter: '{meter_id}'",
                                      param=f"{param}[meter]", code="resource_missing")
    trial = raw.get("trial_period_days")
    return {
        "interval": interval,
        "interval_count": count,
        "meter": meter_id,
        "trial_period_days": as_int(trial, f"{param}[trial_period_days]")
        if trial not in (None, "") else None,
        "usage_type": usage_type,
    }


def build_price(call: Call, data: dict[str, Any], product: dict[str, Any] | None,
                prefix: str = "") -> dict[str, Any]:
    """A validated, unsaved price. `prefix` (e.g. `default_price_data`) names params in errors."""
    name = _namer(prefix)
    currency = data.get("currency")
    if currency in (None, ""):
        raise _missing(name("currency"))
    currency = str(currency).lower()
    if len(currency) != 3 or not currency.isalpha():
        raise _invalid(f"Invalid currency: {currency}", name("currency"))
    scheme = data.get("billing_scheme") or "per_unit"
    if scheme not in ("per_unit", "tiered"):
        raise _invalid("Invalid billing_scheme: must be one of per_unit or tiered",
                       name("billing_scheme"))
    recurring = _recurring(call, data.get("recurring"), name("recurring"))
    tiers = None
    tiers_mode = nullable(data.get("tiers_mode"))
    unit_amount, unit_decimal = None, None
    custom = nullable(data.get("custom_unit_amount"))
    transform = nullable(data.get("transform_quantity"))
    if scheme == "tiered":
        if data.get("unit_amount") not in (None, "") or data.get(
            "unit_amount_decimal"
        ) not in (None, ""):
            raise _invalid("You may not set `unit_amount` or `unit_amount_decimal` when "
                           "`billing_scheme` is `tiered`; set the amounts on `tiers`.",
                           name("unit_amount"))
        if tiers_mode is None:
            raise _missing(name("tiers_mode"))
        if tiers_mode not in ("graduated", "volume"):
            raise _invalid("Invalid tiers_mode: must be one of graduated or volume",
                           name("tiers_mode"))
        if transform is not None:
            raise _exclusive("tiers", "transform_quantity", name("tiers"))
        tiers = _tiers(data.get("tiers"), name("tiers"))
    else:
        if data.get("tiers") not in (None, "") or tiers_mode is not None:
            raise _invalid("`tiers` and `tiers_mode` can only be set when `billing_scheme` is "
                           "`tiered`.", name("tiers" if data.get("tiers") else "tiers_mode"))
        unit_amount, unit_decimal = _amount(data, "unit_amount", name)
        if unit_decimal is None and custom is None:
            raise _missing(name("unit_amount"))
    if custom is not None:
        if recurring is not None:
            raise _invalid("`custom_unit_amount` is only supported for one-time prices.",
                           name("custom_unit_amount"))
        custom = {k: as_int(custom[k], f"{name('custom_unit_amount')}[{k}]")
                  if custom.get(k) not in (None, "") else None
                  for k in ("maximum", "minimum", "preset")}
    if transform is not None:
        divide_by = as_int(transform.get("divide_by"),
                           f"{name('transform_quantity')}[divide_by]")
        if divide_by < 1 or transform.get("round") not in ("up", "down"):
            raise _invalid("Invalid transform_quantity: divide_by must be positive and round "
                           "one of up or down", name("transform_quantity"))
        transform = {"divide_by": divide_by, "round": transform["round"]}
    lookup_key = nullable(data.get("lookup_key"))
    if lookup_key is not None and len(str(lookup_key)) > 200:
        raise _invalid("Invalid lookup_key: must be at most 200 characters", name("lookup_key"))
    tax_behavior = data.get("tax_behavior") or "unspecified"
    if tax_behavior not in ("exclusive", "inclusive", "unspecified"):
        raise _invalid("Invalid tax_behavior: must be one of exclusive, inclusive, or "
                       "unspecified", name("tax_behavior"))
    return {
        "id": call.store.new_id("price"),
        "object": "price",
        "active": as_bool(data.get("active", True), name("active")),
        "billing_scheme": scheme,
        "created": call.now(),
        "currency": currency,
        "custom_unit_amount": custom,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": merge_metadata({}, data.get("metadata") or {}, name("metadata")),
        "nickname": nullable(data.get("nickname")),
        "product": product["id"] if product else None,
        "recurring": recurring,
        "tax_behavior": tax_behavior,
        "tiers_mode": tiers_mode if scheme == "tiered" else None,
        "transform_quantity": transform,
        "type": "recurring" if recurring is not None else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": unit_decimal,
        "_tiers": tiers,
    }


def _lookup_key_holder(call: Call, key: str, price_id: str | None, transfer: bool,
                       param: str) -> dict[str, Any] | None:
    """The price that must give up `key`, or Stripe's error when it may not be moved."""
    for other in call.store.all("price"):
        if other["lookup_key"] == key and other["id"] != price_id:
            if not transfer:
                raise InvalidRequestError(
                    f"A price (`{other['id']}`) already uses that lookup key.", param=param
                )
            return other
    return None


def _release_key(call: Call, holder: dict[str, Any] | None) -> None:
    if holder is not None:
        key = holder["lookup_key"]
        holder["lookup_key"] = None
        call.sandbox.emit("price.updated", holder, {"lookup_key": key}, request=call)


def price_of(store: Store, price_id: str) -> dict[str, Any]:
    """For other modules: the stored price, or Stripe's 404."""
    price = store.get("price", price_id) if isinstance(price_id, str) else None
    if price is None:
        raise NotFoundError("price", str(price_id))
    return price


@routes.post("/v1/prices")
def create(call: Call) -> dict[str, Any]:
    from .products import build_product, live_product

    p = call.params
    product, new_product = None, None
    if p.get("product") not in (None, "") and p.get("product_data") not in (None, ""):
        raise _exclusive("product", "product_data", "product")
    if p.get("product") not in (None, ""):
        product = live_product(call, p["product"], param="product", status=400)
    elif isinstance(p.get("product_data"), dict):
        new_product = product = build_product(call, p["product_data"], prefix="product_data")
    else:
        raise _missing("product")
    price = build_price(call, p, product)
    holder = None
    if price["lookup_key"] is not None:
        transfer = as_bool(p.get("transfer_lookup_key", False), "transfer_lookup_key")
        holder = _lookup_key_holder(call, price["lookup_key"], None, transfer, "lookup_key")
    if new_product is not None:
        call.store.put(new_product)
        call.sandbox.emit("product.created", new_product, request=call)
    _release_key(call, holder)
    call.store.put(price)
    call.sandbox.emit("price.created", price, request=call)
    return price


def _filtered(call: Call) -> list[dict[str, Any]]:
    p = call.params
    in_range = created_filter(p)
    active = as_bool(p["active"], "active") if p.get("active") not in (None, "") else None
    keys = {str(k) for k in as_list(p.get("lookup_keys"), "lookup_keys")}
    if len(keys) > 10:
        raise _invalid("You may pass at most 10 lookup keys.", "lookup_keys")
    recurring: dict[str, Any] = p["recurring"] if isinstance(p.get("recurring"), dict) else {}
    currency = str(p["currency"]).lower() if p.get("currency") else None
    found = []
    for price in call.store.all("price"):
        rec = price["recurring"] or {}
        if (
            (active is None or price["active"] == active)
            and (not keys or price["lookup_key"] in keys)
            and (not p.get("product") or price["product"] == p["product"])
            and (not p.get("type") or price["type"] == p["type"])
            and (currency is None or price["currency"] == currency)
            and all(rec.get(k) == v for k, v in recurring.items() if v not in (None, ""))
            and (not recurring or price["recurring"] is not None)
            and in_range(price)
        ):
            found.append(price)
    return found


@routes.get("/v1/prices")
def list_(call: Call) -> dict[str, Any]:
    return paginate(_filtered(call), call.params, "/v1/prices")


@routes.get("/v1/prices/search")
def search(call: Call) -> dict[str, Any]:
    from .products import search_objects

    return search_objects(call.store.all("price"), call.params, "/v1/prices/search",
                          SEARCH_FIELDS)


@routes.get("/v1/prices/{price}")
def retrieve(call: Call, price: str) -> dict[str, Any]:
    return price_of(call.store, price)


@routes.post("/v1/prices/{price}")
def update(call: Call, price: str) -> dict[str, Any]:
    obj = price_of(call.store, price)
    p = call.params
    for field in _IMMUTABLE:
        if field in p:  # Stripe's update takes none of these: amounts are fixed at creation
            raise InvalidRequestError(f"Received unknown parameter: {field}", param=field,
                                      code="parameter_unknown")
    changes: dict[str, Any] = {}
    if "active" in p:
        changes["active"] = as_bool(p["active"], "active")
    if "nickname" in p:
        changes["nickname"] = nullable(p["nickname"])
    if "metadata" in p:
        changes["metadata"] = merge_metadata(obj["metadata"], p["metadata"])
    if "tax_behavior" in p:
        if obj["tax_behavior"] != "unspecified" and p["tax_behavior"] != obj["tax_behavior"]:
            raise _invalid("tax_behavior cannot be changed once it is set to exclusive or "
                           "inclusive.", "tax_behavior")
        changes["tax_behavior"] = p["tax_behavior"]
    holder = None
    if "lookup_key" in p:
        key = nullable(p["lookup_key"])
        if key is not None:
            transfer = as_bool(p.get("transfer_lookup_key", False), "transfer_lookup_key")
            holder = _lookup_key_holder(call, str(key), obj["id"], transfer, "lookup_key")
        changes["lookup_key"] = key
    previous = {k: obj[k] for k, v in changes.items() if obj[k] != v}
    _release_key(call, holder)
    if previous:
        obj.update({k: changes[k] for k in previous})
        call.sandbox.emit("price.updated", obj, previous, request=call)
    return obj
