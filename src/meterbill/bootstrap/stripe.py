"""Which Stripe meterbill talks to: Stripe itself with a key, else the local sandbox (in this
process, or on a port named by STRIPE_API_BASE).

One `StripeClient` per path, each with its own HTTP timeout: the container's (API requests and
commands, STRIPE_TIMEOUT_SECONDS), the webhook handlers' (STRIPE_WEBHOOK_TIMEOUT_SECONDS) and
the usage sync's (STRIPE_USAGE_SYNC_TIMEOUT_SECONDS). A caller's own HTTP client (tests, the
in-process sandbox) is shared by all three and keeps its own timeouts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import stripe

from ..adapters.metrics import MeteredHTTPClient
from ..adapters.stripe_gateway import API_VERSION
from ..config import Settings

if TYPE_CHECKING:
    from stripe_sandbox import Sandbox

log = logging.getLogger("meterbill")

SANDBOX_KEY = "sk_test_sandbox"


@dataclass(frozen=True)
class StripeConnection:
    """Where and how to reach Stripe; `client(timeout)` makes one path's client."""

    settings: Settings
    api_key: str
    # The caller's or the in-process sandbox's client, shared by every path; None = a default
    # (requests) client per path with that path's timeout.
    http_client: stripe.HTTPClient | None
    sandbox: Sandbox | None

    def client(self, timeout: float) -> stripe.StripeClient:
        kwargs: dict[str, Any] = {
            "stripe_version": API_VERSION,
            "max_network_retries": self.settings.stripe_max_network_retries,
            "http_client": MeteredHTTPClient(
                self.http_client or stripe.new_default_http_client(timeout=timeout)),
        }
        if self.settings.stripe_api_base:
            base = self.settings.stripe_api_base.rstrip("/")
            kwargs["base_addresses"] = {"api": base, "meter_events": base}
        return stripe.StripeClient(self.api_key, **kwargs)


def connect(settings: Settings, http_client: stripe.HTTPClient | None) -> StripeConnection:
    """Stripe itself with a key, else the sandbox: `http_client`'s (tests), the one on
    STRIPE_API_BASE, or a new in-process one."""
    sandbox: Sandbox | None = None
    if settings.stripe_secret_key is not None:
        api_key = settings.stripe_secret_key.get_secret_value()
    else:
        api_key = SANDBOX_KEY
        if http_client is None and settings.stripe_api_base is None:
            sandbox, http_client = _in_process_sandbox()
            log.warning("SANDBOX MODE: no STRIPE_SECRET_KEY, using the in-process Stripe "
                        "sandbox; no real money moves")
        else:
            # A caller's sandbox client (tests) brings its Sandbox; a remote sandbox does not.
            from stripe_sandbox import SandboxHTTPClient

            if isinstance(http_client, SandboxHTTPClient):
                sandbox = http_client.sandbox
    return StripeConnection(settings, api_key, http_client, sandbox)


def _in_process_sandbox() -> tuple[Sandbox, stripe.HTTPClient]:
    # Imported here so meterbill never loads the sandbox unless sandbox mode asks for it.
    from stripe_sandbox import Sandbox, SandboxHTTPClient

    sandbox = Sandbox()
    return sandbox, SandboxHTTPClient(sandbox)
