"""Service-level objectives as configuration, and the pure judgement of a measured value.

`slos.toml` (shipped; SLO_FILE overrides it) lists each objective by name: the comparison and
threshold (`objective = ">= 0.99"`), the window it is measured over (`window = "24h"`) and a
description. The names are the measures meterbill knows (`MEASURES`); an unknown name, a
malformed objective or window is refused with what to write instead.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path

from .errors import InvalidInput

# What meterbill can measure, and the unit each is in.
MEASURES = {
    "webhook_success": "ratio",  # events handled (or ignored) / events that ended
    "payment_first_attempt": "ratio",  # first attempts paid / first attempts made
    "usage_sync_lag_hours": "hours",  # the usage sync late, beyond its interval
    "invoice_generation_failures": "count",  # invoices Stripe could not finalize
    "drifts_open": "count",  # reconciliation drifts no run could fix
    "unreconciled_cents": "cents",  # usage drift valued at the plan's overage price
    "inbox_age_minutes": "minutes",  # the oldest webhook event not yet handled
}
_OBJECTIVE = re.compile(r"^\s*(>=|<=)\s*([0-9]+(?:\.[0-9]+)?)\s*$")
_WINDOW = re.compile(r"^\s*([0-9]+)\s*(m|h|d)\s*$")
_UNITS = {"m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Slo:
    name: str
    comparison: str  # ">=" (at least) or "<=" (at most)
    threshold: Decimal
    window: timedelta
    description: str

    @property
    def unit(self) -> str:
        return MEASURES[self.name]

    def met(self, value: Decimal | None) -> bool:
        """Whether `value` meets the objective; nothing measured (None) meets it."""
        if value is None:
            return True
        return value >= self.threshold if self.comparison == ">=" else value <= self.threshold

    def describe(self) -> str:
        return f"{self.comparison} {self.threshold} {self.unit}"


def parse_slos(text: str, source: str = "slos.toml") -> tuple[Slo, ...]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidInput(f"{source} is not valid TOML: {error}", field="slo_file") from None
    found = []
    for name, entry in data.items():
        if name not in MEASURES:
            raise InvalidInput(f"{source}: [{name}] is not a measure meterbill knows; use one "
                               f"of {', '.join(MEASURES)}", field="slo_file")
        if not isinstance(entry, dict):
            raise InvalidInput(f"{source}: [{name}] must be a table", field="slo_file")
        objective = _OBJECTIVE.match(str(entry.get("objective", "")))
        if objective is None:
            raise InvalidInput(f"{source}: [{name}] objective must look like \">= 0.99\" or "
                               f"\"<= 6\", not {entry.get('objective')!r}", field="slo_file")
        window = _WINDOW.match(str(entry.get("window", "")))
        if window is None:
            raise InvalidInput(f"{source}: [{name}] window must look like \"30m\", \"24h\" or "
                               f"\"30d\", not {entry.get('window')!r}", field="slo_file")
        try:
            threshold = Decimal(objective.group(2))
        except InvalidOperation:  # pragma: no cover  (the pattern admits only numbers)
            raise InvalidInput(f"{source}: [{name}] threshold is not a number",
                               field="slo_file") from None
        found.append(Slo(name, objective.group(1), threshold,
                         timedelta(seconds=int(window.group(1)) * _UNITS[window.group(2)]),
                         str(entry.get("description", ""))))
    return tuple(found)


def load_slos(path: Path | None = None) -> tuple[Slo, ...]:
    """`path`, or the `slos.toml` shipped inside the package when None."""
    if path is None:
        text = resources.files("meterbill").joinpath("slos.toml").read_text(encoding="utf-8")
        return parse_slos(text)
    try:
        return parse_slos(path.read_text(encoding="utf-8"), str(path))
    except OSError as error:
        raise InvalidInput(f"SLO_FILE {path} cannot be read: {error.strerror}",
                           field="slo_file") from None
