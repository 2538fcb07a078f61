"""Webhook endpoints: create (the `whsec_` secret is shown once), retrieve, update, delete, list.

Delivery itself lives in `stripe_sandbox.delivery`; creating the first endpoint attaches it.
"""

from __future__ import annotations

import functools
import re
import secrets
import typing
from typing import Any
from urllib.parse import urlsplit

from ..engine import Call
from ..errors import InvalidRequestError, NotFoundError
from ..listing import paginate
from ..router import Routes
from ..wire import as_bool, as_list, merge_metadata
from .common import deleted, nullable, require

routes = Routes()

# Stripe allows 16 webhook endpoints per account.
MAX_ENDPOINTS = 16
_EVENT_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")


@functools.cache
def event_types() -> frozenset[str]:
    """The event types Stripe sends, as stripe-python lists them for `enabled_events`."""
    try:
        from stripe.params._webhook_endpoint_create_params import WebhookEndpointCreateParams

        listed = WebhookEndpointCreateParams.__annotations__["enabled_events"]
        return frozenset(typing.get_args(typing.get_args(listed)[0])) - {"*"}
    except (ImportError, KeyError, IndexError):  # another stripe-python layout: shape only
        return frozenset()


def _known(name: str) -> bool:
    known = event_types()
    return name in known if known else bool(_EVENT_NAME.match(name))


def _url(value: Any, param: str = "url") -> str:
    text = str(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequestError(
            f"Invalid URL: {text}. URLs must be absolute and start with http:// or https://.",
            param=param, code="url_invalid",
        )
    return text


def _enabled_events(value: Any) -> list[str]:
    events = [str(e) for e in as_list(value, "enabled_events")]
    if not events:
        raise InvalidRequestError("Missing required param: enabled_events.",
                                  param="enabled_events", code="parameter_missing")
    for index, name in enumerate(events):
        if name != "*" and not _known(name):
            raise InvalidRequestError(
                f"Invalid enabled_events[{index}]: '{name}' is not an event type Stripe sends; "
                "use one such as 'invoice.paid', or '*' for every event.",
                param=f"enabled_events[{index}]", code="parameter_invalid_string",
            )
    # Stripe keeps the list as given, without repeats.
    return list(dict.fromkeys(events))


def _find(call: Call, webhook_endpoint: str) -> dict[str, Any]:
    obj = call.store.get("webhook_endpoint", webhook_endpoint)
    if obj is None:
        raise NotFoundError("webhook endpoint", webhook_endpoint)
    return obj


@routes.post("/v1/webhook_endpoints")
def create(call: Call) -> dict[str, Any]:
    from ..delivery import install

    p = call.params
    url = _url(require(p, "url"))
    enabled = _enabled_events(p.get("enabled_events"))
    metadata = merge_metadata({}, p.get("metadata") or {})
    if len(call.store.all("webhook_endpoint")) >= MAX_ENDPOINTS:
        raise InvalidRequestError(
            f"You have reached the maximum of {MAX_ENDPOINTS} test webhook endpoints."
        )
    secret = "whsec_" + secrets.token_hex(16)
    endpoint: dict[str, Any] = {
        "id": call.store.new_id("we"),
        "object": "webhook_endpoint",
        "api_version": nullable(p.get("api_version")),
        "application": None,
        "created": call.now(),
        "description": nullable(p.get("description")),
        "enabled_events": enabled,
        "livemode": False,
        "metadata": metadata,
        "status": "enabled",
        "url": url,
        "_secret": secret,
    }
    install(call.sandbox)
    call.store.put(endpoint)
    # Only the create response carries the secret.
    return dict(endpoint, secret=secret)


@routes.get("/v1/webhook_endpoints/{webhook_endpoint}")
def retrieve(call: Call, webhook_endpoint: str) -> dict[str, Any]:
    return _find(call, webhook_endpoint)


@routes.post("/v1/webhook_endpoints/{webhook_endpoint}")
def update(call: Call, webhook_endpoint: str) -> dict[str, Any]:
    obj = _find(call, webhook_endpoint)
    p = call.params
    changes: dict[str, Any] = {}
    if "url" in p:
        changes["url"] = _url(p["url"])
    if "enabled_events" in p:
        changes["enabled_events"] = _enabled_events(p["enabled_events"])
    if "description" in p:
        changes["description"] = nullable(p["description"])
    if "metadata" in p:
        changes["metadata"] = merge_metadata(obj.get("metadata") or {}, p["metadata"])
    if "disabled" in p:
        changes["status"] = "disabled" if as_bool(p["disabled"], "disabled") else "enabled"
    obj.update(changes)
    return obj


@routes.delete("/v1/webhook_endpoints/{webhook_endpoint}")
def delete(call: Call, webhook_endpoint: str) -> dict[str, Any]:
    obj = _find(call, webhook_endpoint)
    call.store.delete("webhook_endpoint", webhook_endpoint)
    return deleted(obj)


@routes.get("/v1/webhook_endpoints")
def list_(call: Call) -> dict[str, Any]:
    return paginate(call.store.all("webhook_endpoint"), call.params, "/v1/webhook_endpoints")
