"""Every JSON answer and every event of a Sandbox, checked against Stripe's types as it goes.

`SchemaRecorder(sandbox)` wraps that one instance's `handle` and listens to its events; the
sandbox's own code is untouched. `problems` collects each violation with the request it came
from (`POST /v1/subscriptions 200: subscription.items...`).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from stripe_sandbox import Sandbox

from .check import Checker


class SchemaRecorder:
    def __init__(self, sandbox: Sandbox) -> None:
        self.checker = Checker()
        self.problems: list[str] = []
        self.responses = 0
        self.events = 0
        self.objects: set[str] = set()
        self.event_types: set[str] = set()
        handle = sandbox.handle

        def recording_handle(method: str, url: str, headers: Any, body: Any) -> Any:
            response = handle(method, url, headers, body)
            self.record(method, url, body, response)
            return response

        sandbox.handle = recording_handle  # type: ignore[method-assign]
        sandbox.listeners.append(self.record_event)

    def record(self, method: str, url: str, body: Any, response: Any) -> None:
        parts = urlsplit(url)
        if not parts.path.startswith("/v1/") or "json" not in \
                str(response.headers.get("Content-Type", "application/json")):
            return
        try:
            answer = json.loads(response.body)
        except ValueError:
            return
        form = body.decode() if isinstance(body, bytes) else body or ""
        asked = "total_count" in " ".join(
            v for values in parse_qs(parts.query + "&" + form).values() for v in values)
        self.responses += 1
        if isinstance(answer, dict):
            self.objects.add(str(answer.get("object", "error" if "error" in answer else "?")))
        source = f"{method} {parts.path} {response.status}"
        self.problems += [f"{source}: {p}" for p in self.checker.response(answer, asked)]

    def record_event(self, event: dict[str, Any]) -> None:
        self.events += 1
        self.event_types.add(str(event.get("type")))
        self.problems += [f"event {event.get('id')}: {p}" for p in self.checker.event(event)]
