"""Products: create (with `default_price_data`), retrieve, update, list, delete, search."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from ..engine import Call
from ..errors import InvalidRequestError
from ..listing import created_filter, paginate, search_page
from ..router import Routes
from ..wire import as_bool, as_list, merge_metadata
from .common import deleted, nullable

routes = Routes()

SEARCH_FIELDS = {"active", "created", "description", "metadata", "name", "shippable", "url"}
_TEXT_FIELDS = ("description", "statement_descriptor", "tax_code", "unit_label", "url")


def _dimensions(value: Any, param: str) -> dict[str, float] | None:
    if value in (None, ""):
        return None
    if not isinstance(value, dict):
        raise InvalidRequestError("Invalid object", param=param, code="parameter_invalid_object")
    dims: dict[str, float] = {}
    for key in ("height", "length", "weight", "width"):
        if value.get(key) in (None, ""):
            raise InvalidRequestError(f"Missing required param: {param}[{key}].",
                                      param=f"{param}[{key}]", code="parameter_missing")
        try:
            dims[key] = float(value[key])  # physical sizes, not money
        except ValueError:
            raise InvalidRequestError(f"Invalid float: {value[key]}", param=f"{param}[{key}]",
                                      code="parameter_invalid_float") from None
    return dims


def _features(value: Any, param: str) -> list[dict[str, str]]:
    features = []
    for i, item in enumerate(as_list(value, param)):
        name = item.get("name") if isinstance(item, dict) else None
        if not name:
            raise InvalidRequestError(f"Missing required param: {param}[{i}][name].",
                                      param=f"{param}[{i}][name]", code="parameter_missing")
        features.append({"name": str(name)})
    return features


def build_product(call: Call, data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A validated, unsaved product from create params (`prefix[...]` names them in errors)."""

    def param(field: str) -> str:
        return f"{prefix}[{field}]" if prefix else field

    name = data.get("name")
    if name in (None, ""):
        raise InvalidRequestError(f"Missing required param: {param('name')}.",
                                  param=param("name"), code="parameter_missing")
    product_id = nullable(data.get("id")) or call.store.new_id("prod", 14)
    if call.store.get("product", product_id) is not None:
        raise InvalidRequestError("Product already exists.", param=param("id"),
                                  code="resource_already_exists")
    product_type = data.get("type") or "service"
    if product_type not in ("good", "service"):
        raise InvalidRequestError("Invalid type: must be one of good or service",
                                  param=param("type"))
    now = call.now()
    product: dict[str, Any] = {
        "id": product_id,
        "object": "product",
        "active": as_bool(data.get("active", True), param("active")),
        "created": now,
        "default_price": None,
        "images": [str(i) for i in as_list(data.get("images"), param("images"))],
        "livemode": False,
        "marketing_features": _features(data.get("marketing_features"),
                                        param("marketing_features")),
        "metadata": merge_metadata({}, data.get("metadata") or {}, param("metadata")),
        "name": str(name),
        "package_dimensions": _dimensions(data.get("package_dimensions"),
                                          param("package_dimensions")),
        "shippable": (as_bool(data["shippable"], param("shippable"))
                      if data.get("shippable") not in (None, "") else None),
        "type": product_type,
        "updated": now,
    }
    for field in _TEXT_FIELDS:
        product[field] = nullable(data.get(field))
    product["tax_details"] = tax_details(product)
    return product


def tax_details(product: dict[str, Any]) -> dict[str, Any] | None:
    """Stripe mirrors `tax_code` in `tax_details` (null without one); no performance location."""
    if not product.get("tax_code"):
        return None
    return {"performance_location": None, "tax_code": product["tax_code"]}


def search_objects(objs: Iterable[dict[str, Any]], params: dict[str, Any], url: str,
                   allowed: set[str]) -> dict[str, Any]:
    """`search_page` over objects whose boolean fields match the query's `'true'`/`'false'`."""
    originals: dict[str, dict[str, Any]] = {}
    views = []
    for obj in objs:
        originals[obj["id"]] = obj
        views.append({
            k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in obj.items()
        })
    page = search_page(views, params, url, allowed)
    page["data"] = [originals[view["id"]] for view in page["data"]]
    return page


def live_product(call: Call, product_id: str, param: str = "id", status: int = 404
                 ) -> dict[str, Any]:
    product = call.store.get("product", product_id) if isinstance(product_id, str) else None
    if product is None:
        raise InvalidRequestError(f"No such product: '{product_id}'", param=param,
                                  code="resource_missing", status=status)
    return product


@routes.post("/v1/products")
def create(call: Call) -> dict[str, Any]:
    p = call.params
    product = build_product(call, p)
    price = None
    data = p.get("default_price_data")
    if data not in (None, ""):
        from .prices import build_price

        if not isinstance(data, dict):
            raise InvalidRequestError("Invalid object", param="default_price_data",
                                      code="parameter_invalid_object")
        price = build_price(call, dict(data), product, prefix="default_price_data")
        product["default_price"] = price["id"]
    call.store.put(product)
    call.sandbox.emit("product.created", product, request=call)
    if price is not None:
        call.store.put(price)
        call.sandbox.emit("price.created", price, request=call)
    return product


@routes.get("/v1/products/search")
def search(call: Call) -> dict[str, Any]:
    return search_objects(call.store.all("product"), call.params, "/v1/products/search",
                          SEARCH_FIELDS)


@routes.get("/v1/products/{id}")
def retrieve(call: Call, id: str) -> dict[str, Any]:  # noqa: A002 - stripe-python's name
    return live_product(call, id)


@routes.post("/v1/products/{id}")
def update(call: Call, id: str) -> dict[str, Any]:  # noqa: A002
    product = live_product(call, id)
    p = call.params
    changes: dict[str, Any] = {}
    if "name" in p:
        if p["name"] in (None, ""):
            raise InvalidRequestError("You cannot unset the name of a product.", param="name")
        changes["name"] = str(p["name"])
    for field in _TEXT_FIELDS:
        if field in p:
            changes[field] = nullable(p[field])
    if "tax_code" in changes:
        changes["tax_details"] = tax_details(changes)
    if "active" in p:
        changes["active"] = as_bool(p["active"], "active")
    if "shippable" in p:
        changes["shippable"] = as_bool(p["shippable"], "shippable")
    if "images" in p:
        changes["images"] = [str(i) for i in as_list(p["images"], "images")]
    if "marketing_features" in p:
        changes["marketing_features"] = _features(p["marketing_features"], "marketing_features")
    if "package_dimensions" in p:
        changes["package_dimensions"] = _dimensions(p["package_dimensions"],
                                                    "package_dimensions")
    if "metadata" in p:
        changes["metadata"] = merge_metadata(product["metadata"], p["metadata"])
    if "default_price" in p:
        price_id = nullable(p["default_price"])
        if price_id is not None:
            price = call.store.get("price", price_id)
            if price is None:
                raise InvalidRequestError(f"No such price: '{price_id}'", param="default_price",
                                          code="resource_missing")
            if price["product"] != product["id"]:
                raise InvalidRequestError(
                    f"The price `{price_id}` does not belong to product `{product['id']}`.",
                    param="default_price",
                )
            if not price["active"]:
                raise InvalidRequestError(
                    "The default price of a product must be active.", param="default_price"
                )
        changes["default_price"] = price_id
    previous = {k: copy.deepcopy(product.get(k)) for k, v in changes.items()
                if product.get(k) != v}
    if previous:
        product.update({k: changes[k] for k in previous})
        product["updated"] = call.now()
        call.sandbox.emit("product.updated", product, previous, request=call)
    return product


@routes.delete("/v1/products/{id}")
def delete(call: Call, id: str) -> dict[str, Any]:  # noqa: A002
    product = live_product(call, id)
    if any(price["product"] == id for price in call.store.all("price")):
        raise InvalidRequestError(
            "This product cannot be deleted because it has one or more user-created prices.",
            param="id",
        )
    call.store.delete("product", id)
    call.sandbox.emit("product.deleted", product, request=call)
    return deleted(product)


@routes.get("/v1/products")
def list_(call: Call) -> dict[str, Any]:
    p = call.params
    in_range = created_filter(p)
    active = as_bool(p["active"], "active") if p.get("active") not in (None, "") else None
    shippable = (as_bool(p["shippable"], "shippable")
                 if p.get("shippable") not in (None, "") else None)
    ids = set(str(i) for i in as_list(p.get("ids"), "ids"))
    found = [
        prod for prod in call.store.all("product")
        if (active is None or prod["active"] == active)
        and (shippable is None or prod["shippable"] == shippable)
        and (not ids or prod["id"] in ids)
        and (p.get("type") in (None, "") or prod["type"] == p["type"])
        and (p.get("url") in (None, "") or prod["url"] == p["url"])
        and in_range(prod)
    ]
    return paginate(found, p, "/v1/products")

