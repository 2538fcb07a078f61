"""Sandbox mode as one connected Stripe account: the in-process sandbox sends its events, signed,
to the serving meterbill's own `POST /webhooks/stripe`, as Stripe sends them to a registered
endpoint (at least once, in any order), so payments, failures, renewals and cancellations reach
the dunning, the timeline and the emails by themselves.

`meterbill serve` calls `connect_webhooks` at start: it registers one endpoint (marked by its
metadata) or points the one registered before at this server's address, and gives the webhook
verifier that endpoint's signing secret. The secret lives with the endpoint in the sandbox's
state (its data file), as Stripe keeps it with the endpoint; nothing else stores it.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from meterbill.bootstrap.webhooks import build_webhooks, webhook_options
from meterbill.services.webhooks.handlers import HANDLERS
from stripe_sandbox.delivery import DeliveryConfig, install

if TYPE_CHECKING:
    from meterbill.bootstrap import Container

log = logging.getLogger("meterbill")

MARK = "meterbill_serve"  # metadata key of the endpoint `serve` registers
PATH = "/webhooks/stripe"
# A refused delivery is tried again after 2 s, 4 s, 8 s: Stripe waits hours, but an advance
# of the sandbox's clocks waits for its events, so the sandbox retries in seconds.
RETRY_BASE_SECONDS = 2.0


def connect_webhooks(container: Container, api_url: str) -> str | None:
    """Register (or repoint) the sandbox's endpoint for `api_url` and verify with its secret;
    the endpoint's id, or None when the sandbox is not in this process (STRIPE_API_BASE)."""
    sandbox = container.sandbox
    if sandbox is None:
        return None
    url = api_url.rstrip("/") + PATH
    events = sorted(HANDLERS)
    endpoints = [we for we in sandbox.store.all("webhook_endpoint")
                 if (we.get("metadata") or {}).get(MARK)]
    endpoints_api = container.stripe_client.v1.webhook_endpoints
    if endpoints:
        endpoint: dict[str, Any] = endpoints[0]
        if (endpoint["url"], endpoint.get("status"), endpoint.get("enabled_events")) != (
                url, "enabled", events):
            changes: Any = {"url": url, "disabled": False, "enabled_events": events}
            key = f"webhook-endpoint:{endpoint['id']}:{uuid.uuid4()}"
            endpoints_api.update(endpoint["id"], params=changes,
                                 options={"idempotency_key": key})
        endpoint_id, secret = str(endpoint["id"]), str(endpoint["_secret"])
    else:
        params: Any = {"url": url, "enabled_events": events, "metadata": {MARK: "true"},
                       "description": "meterbill serve (sandbox mode)"}
        created = endpoints_api.create(
            params=params, options={"idempotency_key": f"webhook-endpoint:{uuid.uuid4()}"})
        endpoint_id, secret = str(created.id), str(created.secret)
    install(sandbox, DeliveryConfig(retry_base_seconds=RETRY_BASE_SECONDS))
    configured = webhook_options(container.settings).signing_secrets
    container.webhooks = build_webhooks(container, options=webhook_options(
        container.settings, signing_secrets=(secret, *configured)))
    log.info("sandbox mode: the sandbox delivers its events to %s (webhook endpoint %s)",
             url, endpoint_id)
    return endpoint_id
