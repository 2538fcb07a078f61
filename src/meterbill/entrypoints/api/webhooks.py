"""`POST /webhooks/stripe`: verify, store, commit, answer. Processing happens elsewhere.

Answers:
- 200 `{"received": true}` once the event is committed to the inbox (a repeat: 200 as well,
  nothing changes);
- 400 `invalid_signature` for a missing or bad signature, a stale timestamp, a header that is
  not ASCII or a body that is not UTF-8; 400 `invalid_event` for a signed body that is not a
  Stripe event (not JSON, or a field of the wrong type or out of range: `ports.webhooks.
  parse_event`). Either is one log line with the reason and the source address, never the
  payload and no traceback; nothing is stored;
- 413 above the size limit; 429 above the per-address rate limit (Stripe retries both);
- 503 when the database cannot take the event, or not within WEBHOOK_STORE_TIMEOUT_SECONDS
  (a stalled database), so that Stripe delivers it again later.

Authenticated by Stripe's signature, not by the API token. `install(app, container)` adds the
endpoint and starts and stops the webhook workers with the app.

The endpoint is answered at the ASGI level, by a middleware in front of FastAPI's routing: it
needs no dependencies, validation or response models, and skipping that machinery cuts the CPU
time of an acknowledgement by about a third (measured with bench/bench_webhook_harness.py's
server). The FastAPI route below runs the same code; it documents the endpoint in the OpenAPI
schema and answers when the router is included without `install`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from meterbill.adapters.token_bucket import TokenBucket
from meterbill.bootstrap import Container
from meterbill.ports.metrics import metrics
from meterbill.ports.webhooks import InvalidSignature, MalformedEvent

from .errors import error_body

log = logging.getLogger("meterbill.webhooks")

PATH = "/webhooks/stripe"
_RECEIVED = json.dumps({"received": True}).encode()

router = APIRouter(tags=["webhooks"])


class RateLimiter:
    """A token bucket per source address: `per_minute` requests, bursts up to that many."""

    def __init__(self, per_minute: int, max_addresses: int = 10_000) -> None:
        self.per_minute = per_minute
        self.max_addresses = max_addresses
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def allow(self, address: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(address)
            if bucket is None:
                bucket = self._buckets[address] = TokenBucket(self.per_minute / 60.0,
                                                              float(self.per_minute), now)
            allowed = bucket.take(now) == 0.0
            if len(self._buckets) > self.max_addresses:  # forget the longest idle addresses
                for key, _ in sorted(self._buckets.items(), key=lambda kv: kv[1].stamp)[
                        : self.max_addresses // 10]:
                    del self._buckets[key]
            return allowed


class _Disconnected(Exception):
    """The sender hung up before its body was complete: nothing to store, nobody to answer."""


def _error(status: int, code: str, message: str) -> tuple[int, bytes]:
    return status, json.dumps(error_body(code, message)).encode()


class WebhookEndpoint:
    """What `POST /webhooks/stripe` does, on raw ASGI parts; one per app."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self._limiter: RateLimiter | None = None

    def _allowed(self, address: str, per_minute: int) -> bool:
        if per_minute <= 0:
            return True
        limiter = self._limiter
        if limiter is None or limiter.per_minute != per_minute:  # the setting changed
            limiter = self._limiter = RateLimiter(per_minute)
        return limiter.allow(address)

    async def answer(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        """(status, JSON body) for one delivery, counted and timed; raises `_Disconnected`."""
        started = time.perf_counter()
        status, body = await self._answer(scope, receive)
        metrics.observe("webhook_ack_seconds", time.perf_counter() - started)
        if status != 200:  # stored ones are counted with their type below
            metrics.count("webhook_events_received", type="unknown",
                          outcome="unavailable" if status == 503 else "rejected")
        return status, body

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        components = self.container.webhook_components()
        options = components.options
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if not self._allowed(address, options.rate_limit_per_minute):
            log.warning("webhook from %s refused: rate limit of %d/min", address,
                        options.rate_limit_per_minute)
            return _error(429, "rate_limited", "Too many webhook requests from this address.")
        signature: str | None = None
        declared = b""
        for name, value in scope["headers"]:
            if name == b"stripe-signature":
                signature = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
        body = await _read_limited(receive, options.max_body_bytes, declared)
        if body is None:
            log.warning("webhook from %s refused: body over %d bytes", address,
                        options.max_body_bytes)
            return _error(413, "payload_too_large",
                          f"Webhook bodies are limited to {options.max_body_bytes} bytes.")
        try:
            # Verified here; stored by the intake's writer, which commits waiting events
            # together and resolves the future only after the commit.
            # Waits at most WEBHOOK_STORE_TIMEOUT_SECONDS: a stalled database is answered 503
            # (the timeout cancels the event's future, so the writer skips it if it has not
            # begun it; a commit already under way may still land, and Stripe's retry is then
            # a repeat).
            receipt = await asyncio.wait_for(
                asyncio.wrap_future(components.intake.submit(body, signature)),
                options.store_timeout_seconds)
        except MalformedEvent as error:  # signed, but not Stripe's shape
            log.warning("webhook from %s refused: %s", address, error)
            return _error(400, "invalid_event", f"Webhook body is not a Stripe event: {error}")
        except InvalidSignature as error:
            log.warning("webhook from %s refused: %s", address, error)
            return _error(400, "invalid_signature", f"Webhook signature check failed: {error}")
        except SQLAlchemyError as error:
            log.error("webhook from %s NOT stored (database: %s); answering 503 so Stripe "
                      "retries", address, type(error).__name__)
            return _error(503, "inbox_unavailable",
                          "The event could not be stored; deliver it again later.")
        except TimeoutError:
            log.error("webhook from %s NOT stored within %.1f s (database stalled?); answering "
                      "503 so Stripe retries", address, options.store_timeout_seconds)
            return _error(503, "inbox_unavailable",
                          "The event could not be stored in time; deliver it again later.")
        if not receipt.new:
            log.info("webhook %s (%s) repeated; already stored", receipt.event_id, receipt.type)
        metrics.count("webhook_events_received", type=receipt.type,
                      outcome="stored" if receipt.new else "duplicate")
        return 200, _RECEIVED


async def _read_limited(receive: Receive, limit: int, declared: bytes) -> bytes | None:
    """The raw body, or None once it grows past `limit` bytes (read no further)."""
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class WebhookMiddleware:
    """Answers `POST /webhooks/stripe` itself; passes every other request on to the app."""

    def __init__(self, app: ASGIApp, endpoint: WebhookEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST"
                or _route_path(scope) != PATH):
            await self.app(scope, receive, send)
            return
        try:
            status, body = await self.endpoint.answer(scope, receive)
        except _Disconnected:
            return
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


@router.post(PATH, summary="Receive a Stripe webhook event",
             responses={400: {"description": "Bad signature"}, 413: {"description": "Too big"},
                        429: {"description": "Rate limited"},
                        503: {"description": "Not stored; Stripe will retry"}})
async def receive_stripe_event(request: Request) -> Response:
    endpoint = getattr(request.app.state, "webhook_endpoint", None)
    if endpoint is None:
        endpoint = request.app.state.webhook_endpoint = WebhookEndpoint(
            request.app.state.container)
    try:
        status, body = await endpoint.answer(request.scope, request.receive)
    except _Disconnected:
        return Response(status_code=400)  # nobody is listening any more
    return Response(body, status_code=status, media_type="application/json")


def install(app: FastAPI, container: Container) -> None:
    """Add the webhook endpoint to `app` and run the webhook workers for the app's lifetime."""
    endpoint = WebhookEndpoint(container)
    app.state.webhook_endpoint = endpoint
    app.add_middleware(WebhookMiddleware, endpoint=endpoint)
    app.include_router(router)  # the OpenAPI description (the middleware answers first)
    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        components = container.webhook_components()
        try:
            await run_in_threadpool(components.sweep)  # rows left over from the last run
        except SQLAlchemyError as error:
            log.error("webhook sweep at start-up failed (%s); the periodic sweep will retry",
                      type(error).__name__)
        try:
            async with previous(application) as state:
                yield state
        finally:
            await run_in_threadpool(components.close)
            container.webhooks = None  # a later app on this container builds fresh workers

    app.router.lifespan_context = lifespan
