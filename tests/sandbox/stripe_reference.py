"""Stripe's own reference data, kept in the repository (`stripe_data/`, see its README for
provenance and licences): example objects (`fixtures3.json`) and Stripe CLI trigger flows.

The examples predate some API versions: `fixtures()` leaves out the keys that Stripe's current
types (`sdk_schema/stripe_types.json`, from its SDKs) no longer declare or declare optional
(`invoice.subscription`, removed in 2025-03-31.basil; `quantity` on metered items), so that
comparing with them asks only for what Stripe sends today.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from .sdk_schema.check import schema

STRIPE_DATA = Path(__file__).resolve().parent / "stripe_data"
TRIGGERS = STRIPE_DATA / "cli-triggers"


@functools.cache
def fixtures() -> dict[str, Any]:
    """`fixtures3.json`'s `resources`: one example object per resource name, as of today."""
    resources: dict[str, Any] = json.loads(
        (STRIPE_DATA / "fixtures3.json").read_text(encoding="utf-8"))["resources"]
    roots = schema()["roots"]
    return {name: prune(example, roots[name]) if name in roots else example
            for name, example in resources.items()}


def prune(example: Any, type_id: str) -> Any:
    """`example` without the keys that the type `type_id` does not require."""
    declared = schema()["types"][type_id]
    if not isinstance(example, dict) or "fields" not in declared:
        return example
    fields = declared["fields"]
    out = {}
    for key, value in example.items():
        spec = fields.get(key)
        if spec is None or not spec["required"]:
            continue
        out[key] = _prune_value(value, spec)
    return out


def _prune_value(value: Any, spec: dict[str, Any]) -> Any:
    for alternative in spec["types"]:
        kind = alternative.get("kind")
        if kind == "ref" and isinstance(value, dict):
            return prune(value, alternative["ref"])
        if kind == "array" and isinstance(value, list):
            return [_prune_value(v, alternative["items"]) for v in value]
        if kind == "list" and isinstance(value, dict):
            return dict(value, data=[_prune_value(v, alternative["items"])
                                     for v in value.get("data") or []])
    return value
