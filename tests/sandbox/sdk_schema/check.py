"""Check sandbox answers and event payloads against `stripe_types.json` (see generate.py).

A violation is a key Stripe always sends that is missing, a key Stripe never sends (not in its
types), `null` where Stripe's type is not nullable, a value outside a closed enum, a float where
Stripe sends an integer, an expanded object the sandbox does not serve, or `total_count` on a
list that did not ask for it. Each is reported with its path, e.g.
`invoice.lines.data[0].pricing.price_details: null where Stripe omits the key or sends an object`.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).resolve().parent / "stripe_types.json"


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


class Checker:
    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.schema = data or schema()
        self.types: dict[str, Any] = self.schema["types"]
        self.roots: dict[str, str] = self.schema["roots"]

    # --- entry points ---------------------------------------------------------------------

    def response(self, body: Any, total_count_asked: bool = False) -> list[str]:
        """Problems of one JSON answer: an object, a list page, or an error envelope."""
        if not isinstance(body, dict):
            return [f"answer is a {type(body).__name__}, not an object"]
        if "error" in body:
            error = body["error"]
            payment_method = error.get("payment_method") if isinstance(error, dict) else None
            if payment_method is not None:
                return self.object(payment_method, "error.payment_method")
            return []
        return self.object(body, body.get("object", "?"), total_count_asked)

    def event(self, event: dict[str, Any]) -> list[str]:
        """An event: its envelope, `data.object` as its type's object, and the keys of
        `data.previous_attributes` as the same object's fields with their full values."""
        here = f"event {event.get('type')}"
        envelope = {k: v for k, v in event.items() if k != "data"}
        problems = self.fields(self.roots["event"], dict(envelope, data={}), here,
                               skip={"data"})
        data = event.get("data")
        if not isinstance(data, dict) or "object" not in data:
            return problems + [f"{here}.data: no object"]
        type_id = self.schema["events"].get(event.get("type"))
        if type_id is None:
            return problems + [f"{here}: Stripe declares no event type {event.get('type')!r}"]
        problems += self.fields(type_id, data["object"], f"{here}.data.object")
        previous = data.get("previous_attributes")
        if previous is not None:
            if not isinstance(previous, dict):
                return problems + [f"{here}.data.previous_attributes is not an object"]
            declared = self.types[type_id]["fields"]
            for key, value in previous.items():
                where = f"{here}.data.previous_attributes.{key}"
                if key not in declared:
                    problems.append(f"{where}: not a field of {type_id}")
                else:
                    problems += self.value(declared[key], value, where)
        unknown = set(data) - {"object", "previous_attributes"}
        problems += [f"{here}.data.{key}: not a key of Stripe's event data" for key in unknown]
        return problems

    # --- the walk -------------------------------------------------------------------------

    def object(self, body: dict[str, Any], here: str, total_count_asked: bool = False
               ) -> list[str]:
        kind = body.get("object")
        if kind in ("list", "search_result"):
            return self.list_page(body, here, None, total_count_asked)
        if body.get("deleted") is True:
            extra = set(body) - {"id", "object", "deleted"}
            return [f"{here}: a deleted object carries only id, object and deleted, not "
                    f"{sorted(extra)}"] if extra else []
        if kind == "event":
            return [p.replace("event ", f"{here} ", 1) for p in self.event(body)]
        if kind not in self.roots:
            return [f"{here}: the sandbox answered an object {kind!r} it does not serve"]
        return self.fields(self.roots[kind], body, here)

    def list_page(self, body: dict[str, Any], here: str, items: dict[str, Any] | None,
                  total_count_asked: bool = False) -> list[str]:
        problems: list[str] = []
        kind = body.get("object")
        allowed = {"object", "data", "has_more", "url"}
        if kind == "search_result":
            allowed |= {"next_page", "total_count"}
        elif total_count_asked:
            allowed.add("total_count")
        for key in ("object", "data", "has_more", "url"):
            if key not in body:
                problems.append(f"{here}.{key}: missing from the list")
        problems += [f"{here}.{key}: Stripe sends no {key} on this list"
                     + (" (only with include[]=total_count)" if key == "total_count" else "")
                     for key in sorted(set(body) - allowed)]
        for index, item in enumerate(body.get("data") or []):
            where = f"{here}.data[{index}]"
            if items is not None:
                problems += self.value(items, item, where)
            elif isinstance(item, dict):
                problems += self.object(item, where)
        return problems

    def fields(self, type_id: str, body: Any, here: str,
               skip: frozenset[str] | set[str] = frozenset()) -> list[str]:
        if not isinstance(body, dict):
            return [f"{here}: a {type(body).__name__} where Stripe sends an object"]
        declared = self.types[type_id]
        fields: dict[str, Any] = declared["fields"]
        problems: list[str] = []
        for name, spec in fields.items():
            if name in skip:
                continue
            if name not in body:
                if spec["required"]:
                    problems.append(f"{here}.{name}: missing (Stripe always sends it)")
                continue
            problems += self.value(spec, body[name], f"{here}.{name}")
        extra = [k for k in body if k not in fields and k not in skip]
        if extra and "additional" in declared:
            for key in extra:
                problems += self.value(declared["additional"], body[key], f"{here}.{key}")
        elif extra:
            problems += [f"{here}.{key}: not a key of Stripe's {type_id.split(':')[-1]}"
                         for key in extra]
        return problems

    def value(self, spec: dict[str, Any], value: Any, here: str) -> list[str]:
        if value is None:
            if spec["nullable"]:
                return []
            absent = "" if spec.get("required", True) else "omits the key or "
            return [f"{here}: null where Stripe {absent}sends {self.describe(spec)}"]
        failures: list[list[str]] = []
        for alternative in spec["types"]:
            problems = self.alternative(alternative, value, here)
            if not problems:
                return []
            failures.append(problems)
        if not failures:
            return [f"{here}: Stripe's type admits no value here"]
        # Report the alternative of the same shape as the value (an object's own problems).
        for alternative, problems in zip(spec["types"], failures, strict=True):
            if isinstance(value, dict) and alternative.get("kind") in ("ref", "list", "map"):
                return problems
            if isinstance(value, list) and alternative.get("kind") == "array":
                return problems
        return failures[0]

    def alternative(self, alt: dict[str, Any], value: Any, here: str) -> list[str]:
        if "enum" in alt:
            if isinstance(value, str) and value in alt["enum"]:
                return []
            return [f"{here}: {value!r} is not one of Stripe's values {alt['enum']}"]
        kind = alt["kind"]
        if kind == "any":
            return []
        if kind in ("string", "id"):
            return [] if isinstance(value, str) else [self.mistyped(here, value, "a string")]
        if kind == "decimal":
            if isinstance(value, str):
                try:
                    Decimal(value)
                    return []
                except InvalidOperation:
                    pass
            return [self.mistyped(here, value, "a decimal string")]
        if kind == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
            return [] if ok else [self.mistyped(here, value, "an integer")]
        if kind == "number":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            return [] if ok else [self.mistyped(here, value, "a number")]
        if kind == "boolean":
            return [] if isinstance(value, bool) else [self.mistyped(here, value, "a boolean")]
        if kind == "map":
            if not isinstance(value, dict):
                return [self.mistyped(here, value, "an object")]
            if alt.get("values") == "string":
                return [f"{here}.{k}: not a string" for k, v in value.items()
                        if not isinstance(v, str)]
            return []
        if kind == "unserved":
            return [f"{here}: an expanded {alt['object']}, an object the sandbox does not serve"]
        if kind == "ref":
            return self.fields(alt["ref"], value, here)
        if kind == "array":
            if not isinstance(value, list):
                return [self.mistyped(here, value, "an array")]
            return [p for i, item in enumerate(value)
                    for p in self.value(alt["items"], item, f"{here}[{i}]")]
        if kind == "list":
            if not isinstance(value, dict) or value.get("object") != "list":
                return [self.mistyped(here, value, "a list object")]
            return self.list_page(value, here, alt["items"])
        if kind == "union":
            return self.value({"nullable": alt["nullable"], "types": alt["types"]}, value, here)
        return [f"{here}: unknown schema kind {kind!r}"]

    @staticmethod
    def mistyped(here: str, value: Any, want: str) -> str:
        return f"{here}: {json.dumps(value, default=str)[:60]} where Stripe sends {want}"

    def describe(self, spec: dict[str, Any]) -> str:
        names = []
        for alt in spec["types"]:
            if "enum" in alt:
                names.append("one of " + ", ".join(alt["enum"]))
            elif alt["kind"] == "ref":
                names.append("an object")
            else:
                names.append({"integer": "an integer", "array": "an array", "list": "a list",
                              "id": "an id"}.get(alt["kind"], f"a {alt['kind']}"))
        return " or ".join(dict.fromkeys(names))
