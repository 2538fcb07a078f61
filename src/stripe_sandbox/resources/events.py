"""Events: list (`type` with `*` wildcards, `types[]`, `created`, `delivery_success`) and retrieve.

The engine records events (`Sandbox.emit`); this module only reads them. Stripe guarantees
events for 30 days; older ones are no longer listed or retrievable, and are dropped from memory.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from ..engine import Call, Sandbox
from ..errors import InvalidRequestError, NotFoundError
from ..listing import created_filter, paginate
from ..router import Routes
from ..wire import as_bool, as_list

routes = Routes()

RETENTION_SECONDS = 30 * 24 * 3600
MAX_TYPES = 20


def expire_events(sandbox: Sandbox) -> None:
    """Forget events past Stripe's 30-day retention."""
    horizon = sandbox.now() - RETENTION_SECONDS
    for event in sandbox.store.all("event"):
        if event["created"] < horizon:
            sandbox.store.delete("event", event["id"])


def _type_filter(params: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    single = params.get("type")
    many = params.get("types")
    if single not in (None, "") and many not in (None, ""):
        raise InvalidRequestError("You may pass either `type` or `types`, but not both.",
                                  param="types")
    if single not in (None, ""):
        pattern = str(single)
        if "*" in pattern:
            return lambda e: fnmatch.fnmatchcase(e["type"], pattern)
        return lambda e: e["type"] == pattern
    if many not in (None, ""):
        names = {str(n) for n in as_list(many, "types")}
        if len(names) > MAX_TYPES:
            raise InvalidRequestError(
                f"You may pass at most {MAX_TYPES} event types in `types`.", param="types"
            )
        return lambda e: e["type"] in names
    return lambda e: True


@routes.get("/v1/events")
def list_(call: Call) -> dict[str, Any]:
    p = call.params
    expire_events(call.sandbox)
    of_type = _type_filter(p)
    in_range = created_filter(p)
    delivered: bool | None = None
    if p.get("delivery_success") not in (None, ""):
        delivered = as_bool(p["delivery_success"], "delivery_success")
    found = [
        e for e in call.store.all("event")
        if of_type(e) and in_range(e)
        and (delivered is None or (e.get("pending_webhooks", 0) == 0) == delivered)
    ]
    return paginate(found, p, "/v1/events")


@routes.get("/v1/events/{id}")
def retrieve(call: Call, id: str) -> dict[str, Any]:  # noqa: A002 - stripe-python's name
    expire_events(call.sandbox)
    event = call.store.get("event", id)
    if event is None:
        raise NotFoundError("event", id)
    return event
