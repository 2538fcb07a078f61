"""Stripe's own reference data, kept in the repository (`stripe_data/`, see its README for
provenance and licences): example objects (`fixtures3.json`) and Stripe CLI trigger flows."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

STRIPE_DATA = Path(__file__).resolve().parent / "stripe_data"
TRIGGERS = STRIPE_DATA / "cli-triggers"


@functools.cache
def fixtures() -> dict[str, Any]:
    """`fixtures3.json`'s `resources`: one example object per resource name."""
    resources: dict[str, Any] = json.loads(
        (STRIPE_DATA / "fixtures3.json").read_text(encoding="utf-8"))["resources"]
    return resources
