"""Stripe's wire format: nested form bodies in, JSON and error envelopes out.

stripe-python encodes `{"items": [{"price": "p"}]}` as `items[0][price]=p` and booleans as
`true`/`false`; every value arrives as a string. Handlers coerce with the helpers below so a
wrong type gets Stripe's own `parameter_invalid_*` error rather than a crash.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from .errors import InvalidRequestError

_KEY_PART = re.compile(r"\[([^\]]*)\]")

# Dicts under these keys hold user data whose keys may look like list indices.
_FREE_FORM = {"metadata", "payload"}


def decode_form(body: str) -> dict[str, Any]:
    """Decode `a[b][0][c]=v` pairs into nested dicts and lists."""
    root: dict[str, Any] = {}
    for raw_key, value in parse_qsl(body, keep_blank_values=True):
        head, _, rest = raw_key.partition("[")
        parts = [head] + (_KEY_PART.findall("[" + rest) if rest else [])
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # `a[]=x`: append
                part = str(len(node))
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise InvalidRequestError(
                        f"Invalid parameter shape for {raw_key}", param=raw_key
                    )
    return _listify(root, None)


def _listify(node: Any, key: str | None) -> Any:
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v, k) for k, v in node.items()}
    if key not in _FREE_FORM and out and all(k.isdigit() for k in out):
        indices = sorted(int(k) for k in out)
        if indices == list(range(len(indices))):
            return [out[str(i)] for i in indices]
    return out


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, default=_json_default).encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# --- coercion of form strings ------------------------------------------------------------


def as_int(value: Any, param: str) -> int:
    if isinstance(value, bool):
        raise InvalidRequestError(
            f"Invalid integer: {value}", param=param, code="parameter_invalid_integer"
        )
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        raise InvalidRequestError(
            f"Invalid integer: {value}", param=param, code="parameter_invalid_integer"
        ) from None


def as_bool(value: Any, param: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise InvalidRequestError(
        f"Invalid boolean: {value}", param=param, code="parameter_invalid_boolean"
    )


def as_decimal(value: Any, param: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequestError(
            f"Invalid decimal: {value}", param=param, code="parameter_invalid_decimal"
        ) from None
    if not result.is_finite():
        raise InvalidRequestError(
            f"Invalid decimal: {value}", param=param, code="parameter_invalid_decimal"
        )
    return result


def decimal_str(value: Decimal) -> str:
    """Stripe prints decimal strings without exponent and without trailing zeros."""
    text = format(value.normalize(), "f")
    return text


def as_list(value: Any, param: str) -> list[Any]:
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):  # `a[5]=x` alone, not from zero
        return [value[k] for k in sorted(value, key=lambda k: int(k) if k.isdigit() else k)]
    return [value]


def merge_metadata(current: dict[str, str], update: Any, param: str = "metadata") -> dict[str, str]:
    """Stripe merges metadata; an empty string for a key (or the whole field) removes it."""
    if update == "":
        return {}
    if not isinstance(update, dict):
        raise InvalidRequestError(
            "Invalid object", param=param, code="parameter_invalid_object"
        )
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            if len(key) > 40:
                raise InvalidRequestError(
                    "Metadata keys can have a maximum length of 40 characters.",
                    param=f"{param}[{key}]",
                )
            merged[key] = str(value)
    if len(merged) > 50:
        raise InvalidRequestError(
            "You can have a maximum of 50 metadata keys.", param=param
        )
    return merged
