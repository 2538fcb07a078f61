"""Request parameters checked against stripe-python's declared parameter types.

Placeholder until the validator is built: accepts everything.
"""

from __future__ import annotations

from typing import Any

from .router import Router


def build_validator(router: Router) -> Any:
    return None
