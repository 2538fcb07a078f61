"""Sandbox-only control pages (no API key, not part of Stripe's API).

- `GET /_sandbox/faults`: the fault settings and counters;
  `POST /_sandbox/faults` (JSON or form body) changes some settings, e.g.
  `{"rate_limit": 25, "paths": ["/v1/customers"]}` or `error_rate=0.1`;
  `DELETE /_sandbox/faults` turns everything off.
- `GET /_sandbox/webhooks`: delivery settings and the latest delivery attempts;
  `POST /_sandbox/webhooks` changes settings (`duplicate`, `shuffle_seconds`, `delay_seconds`,
  `timeout_seconds`, `retry_base_seconds`, `max_attempts`); `DELETE` restores the defaults.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from ..engine import Response
from ..router import Routes
from ..wire import dumps

if TYPE_CHECKING:
    from ..engine import Sandbox

routes = Routes()  # no API routes: everything here is a page

FAULTS_PATH = "/_sandbox/faults"
WEBHOOKS_PATH = "/_sandbox/webhooks"
_RECENT_ATTEMPTS = 50


def _json(status: int, payload: Any) -> Response:
    return Response(status, dumps(payload), {"Content-Type": "application/json"})


def _body_values(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    text = body.decode() if body else ""
    if not text.strip():
        return {}
    if headers.get("content-type", "").startswith("application/json"):
        loaded = json.loads(text)
        if not isinstance(loaded, dict):
            raise ValueError("the JSON body must be an object")
        return loaded
    values: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        key = key.removesuffix("[]")
        if key == "paths":  # repeatable: paths=/v1/a&paths=/v1/b
            values.setdefault("paths", []).append(value)
        else:
            values[key] = value
    return values


def _faults_page(sandbox: Sandbox, method: str, headers: dict[str, str],
                 body: bytes) -> Response:
    from ..faults import install

    faults = install(sandbox)
    if method == "POST":
        faults.configure(**_body_values(headers, body))
    elif method == "DELETE":
        faults.reset()
    elif method != "GET":
        return _json(405, {"error": f"{method} is not allowed here; use GET, POST or DELETE."})
    return _json(200, {"config": faults.config.as_dict(), "stats": faults.stats.as_dict(),
                       "active": faults.active})


def _webhooks_page(sandbox: Sandbox, method: str, headers: dict[str, str],
                   body: bytes) -> Response:
    from ..delivery import DeliveryConfig, install

    dispatcher = install(sandbox)
    if method == "POST":
        dispatcher.configure(**_body_values(headers, body))
    elif method == "DELETE":
        dispatcher.configure(DeliveryConfig())
    elif method != "GET":
        return _json(405, {"error": f"{method} is not allowed here; use GET, POST or DELETE."})
    recent = list(dispatcher.attempts)[-_RECENT_ATTEMPTS:]
    return _json(200, {
        "config": dataclasses.asdict(dispatcher.config),
        "attempts": [dict(dataclasses.asdict(a), ok=a.ok) for a in recent],
    })


def control_page(sandbox: Sandbox, method: str, url: str, headers: dict[str, str],
                 body: bytes) -> Response | None:
    path = urlsplit(url).path.rstrip("/")
    pages = {FAULTS_PATH: _faults_page, WEBHOOKS_PATH: _webhooks_page}
    page = pages.get(path)
    if page is None:
        return None
    try:
        return page(sandbox, method.upper(), headers, body)
    except (ValueError, json.JSONDecodeError) as error:
        return _json(400, {"error": str(error)})


pages = [control_page]
