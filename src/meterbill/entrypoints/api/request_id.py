"""Every API request gets an id: the caller's `X-Request-Id` when it is a plain token of up to
64 characters, else a new one. Every log line of the request carries it
(ports/log_context.py) and the answer echoes it, so a customer's report finds its lines."""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meterbill.ports.log_context import bound

_GIVEN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
HEADER = b"x-request-id"


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(HEADER, b"").decode("latin-1")
        value = given if _GIVEN.match(given) else f"req_{uuid.uuid4().hex[:20]}"

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      (HEADER, value.encode("latin-1"))]
            await send(message)

        with bound(value):
            await self.app(scope, receive, answer)
