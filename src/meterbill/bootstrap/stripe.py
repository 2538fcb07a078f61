"""Which Stripe meterbill talks to: Stripe itself with a key, else the local sandbox (in this
process, or on a port named by STRIPE_API_BASE). One `StripeClient` per container."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import stripe

from ..adapters.stripe_gateway import API_VERSION
from ..config import Settings

if TYPE_CHECKING:
    from stripe_sandbox import Sandbox

log = logging.getLogger("meterbill")

SANDBOX_KEY = "sk_test_sandbox"


def connect(settings: Settings,
            http_client: stripe.HTTPClient | None) -> tuple[stripe.StripeClient, Sandbox | None]:
    """The client, and the in-process sandbox behind it when there is one."""
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
    kwargs: dict[str, Any] = {
        "stripe_version": API_VERSION,
        "max_network_retries": settings.stripe_max_network_retries,
    }
    if settings.stripe_api_base:
        base = settings.stripe_api_base.rstrip("/")
        kwargs["base_addresses"] = {"api": base, "meter_events": base}
    if http_client is not None:
        kwargs["http_client"] = http_client
    return stripe.StripeClient(api_key, **kwargs), sandbox


def _in_process_sandbox() -> tuple[Sandbox, stripe.HTTPClient]:
    # Imported here so meterbill never loads the sandbox unless sandbox mode asks for it.
    from stripe_sandbox import Sandbox, SandboxHTTPClient

    sandbox = Sandbox()
    return sandbox, SandboxHTTPClient(sandbox)
