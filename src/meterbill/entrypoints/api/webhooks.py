"""`POST /webhooks/stripe`: verify, store, commit, answer. Processing happens elsewhere.

Answers:
- 200 `{"received": true}` once the event is committed to the inbox (a repeat: 200 as well,
  nothing changes);
- 400 for a missing or bad signature, a stale timestamp or a body that is not an event; logged
  with the reason and the source address, never the payload; nothing is stored;
- 413 above the size limit; 429 above the per-address rate limit (Stripe retries both);
- 503 when the database cannot take the event, so that Stripe delivers it again later.

Authenticated by Stripe's signature, not by the API token. `install(app, container)` adds the
route and starts and stops the webhook workers with the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from meterbill.services.webhooks.ports import InvalidSignature
from meterbill.webhooks_wiring import WebhookComponents, webhooks_for

from .errors import error_body

log = logging.getLogger("meterbill.webhooks")

router = APIRouter(tags=["webhooks"])


class RateLimiter:
    """A token bucket per source address: `per_minute` requests, bursts up to that many."""

    def __init__(self, per_minute: int, max_addresses: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.max_addresses = max_addresses
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, address: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(address, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[address] = (tokens - 1.0 if allowed else tokens, now)
            if len(self._buckets) > self.max_addresses:  # forget the longest idle addresses
                for key, _ in sorted(self._buckets.items(), key=lambda kv: kv[1][1])[
                        : self.max_addresses // 10]:
                    del self._buckets[key]
            return allowed


def _components(request: Request) -> WebhookComponents:
    return webhooks_for(request.app.state.container)


def _limiter(request: Request, per_minute: int) -> RateLimiter | None:
    if per_minute <= 0:
        return None
    state = request.app.state
    limiter = getattr(state, "webhook_rate_limiter", None)
    if limiter is None:
        limiter = state.webhook_rate_limiter = RateLimiter(per_minute)
    return limiter


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The raw body, or None once it grows past `limit` bytes (read no further)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/webhooks/stripe", summary="Receive a Stripe webhook event",
             responses={400: {"description": "Bad signature"}, 413: {"description": "Too big"},
                        429: {"description": "Rate limited"},
                        503: {"description": "Not stored; Stripe will retry"}})
async def receive_stripe_event(request: Request) -> JSONResponse:
    components = _components(request)
    options = components.options
    address = request.client.host if request.client else "unknown"
    limiter = _limiter(request, options.rate_limit_per_minute)
    if limiter is not None and not limiter.allow(address):
        log.warning("webhook from %s refused: rate limit of %d/min", address,
                    options.rate_limit_per_minute)
        return _error(429, "rate_limited", "Too many webhook requests from this address.")
    body = await _read_limited(request, options.max_body_bytes)
    if body is None:
        log.warning("webhook from %s refused: body over %d bytes", address,
                    options.max_body_bytes)
        return _error(413, "payload_too_large",
                      f"Webhook bodies are limited to {options.max_body_bytes} bytes.")
    signature = request.headers.get("stripe-signature")
    try:
        # Verified here; stored by the intake's writer, which commits waiting events together.
        receipt = await asyncio.wrap_future(components.intake.submit(body, signature))
    except InvalidSignature as error:
        log.warning("webhook from %s refused: %s", address, error)
        return _error(400, "invalid_signature", f"Webhook signature check failed: {error}")
    except SQLAlchemyError as error:
        log.error("webhook from %s NOT stored (database: %s); answering 503 so Stripe retries",
                  address, type(error).__name__)
        return _error(503, "inbox_unavailable",
                      "The event could not be stored; deliver it again later.")
    if not receipt.new:
        log.info("webhook %s (%s) repeated; already stored", receipt.event_id, receipt.type)
    return JSONResponse({"received": True})


def install(app: FastAPI, container: Any) -> None:
    """Add the webhook route to `app` and run the webhook workers for the app's lifetime."""
    app.include_router(router)
    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        components = webhooks_for(container)
        components.start()
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
