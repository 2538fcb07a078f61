"""Resource modules: each declares `routes` (and optionally `tick` and `pages`).

`ROUTE_GROUPS`, `TICKERS` and `PAGES` are the sandbox's fixed tables, read once by `Sandbox`.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = [
    "customers",
    "payment_methods",
    "payment_intents",
    "products",
    "prices",
    "meters",
    "invoiceitems",
    "invoices",
    "subscriptions",
    "subscription_schedules",
    "test_clocks",
    "events",
    "webhook_endpoints",
    "billing_portal",
    "control",
]

ROUTE_GROUPS: list[Any] = []
TICKERS: list[Any] = []
PAGES: list[Any] = []

for _name in _MODULES:
    try:
        _module = importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _error:  # a module not written yet
        if _error.name != f"{__name__}.{_name}":
            raise
        continue
    ROUTE_GROUPS.append(_module.routes)
    if hasattr(_module, "tick"):
        TICKERS.append(_module.tick)
    PAGES.extend(getattr(_module, "pages", []))
