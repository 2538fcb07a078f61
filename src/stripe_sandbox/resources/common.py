"""Small helpers shared by resource handlers."""

from __future__ import annotations

import copy
from typing import Any

from ..errors import InvalidRequestError
from ..wire import merge_metadata


def require(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value in (None, ""):
        raise InvalidRequestError(
            f"Missing required param: {name}.", param=name, code="parameter_missing"
        )
    return value


def nullable(value: Any) -> Any:
    """Stripe clears a field sent as an empty string."""
    return None if value == "" else value


def apply_updates(
    obj: dict[str, Any], params: dict[str, Any], fields: tuple[str, ...]
) -> dict[str, Any]:
    """Set `fields` present in `params`; return the previous values of what changed."""
    previous: dict[str, Any] = {}
    for name in fields:
        if name not in params:
            continue
        new = nullable(params[name])
        if name == "metadata":
            new = merge_metadata(obj.get("metadata") or {}, params[name])
        if obj.get(name) != new:
            previous[name] = copy.deepcopy(obj.get(name))
            obj[name] = new
    return previous


def deleted(obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": obj["id"], "object": obj["object"], "deleted": True}
