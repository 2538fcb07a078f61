"""A local, stateful Stripe API for billing, at the API version stripe-python 16 pins.

meterbill never imports this package; tests, the demo wiring and `meterbill sandbox` do.
"""

API_VERSION = "2026-10-28.endive"

from .engine import Sandbox, SandboxConfig  # noqa: E402
from .inprocess import SandboxHTTPClient  # noqa: E402

__all__ = ["API_VERSION", "Sandbox", "SandboxConfig", "SandboxHTTPClient"]
