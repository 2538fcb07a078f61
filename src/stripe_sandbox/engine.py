"""The sandbox engine: one object that answers Stripe API requests.

Both the HTTP server and the in-process `http_client` call `Sandbox.handle`; everything that
changes state runs under one lock, so concurrent requests see Stripe's serial semantics
(twenty racing creates with one idempotency key make one object).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from . import API_VERSION
from .errors import (
    ApiError,
    AuthenticationError,
    IdempotencyError,
    InvalidRequestError,
    SandboxError,
    UrlNotFoundError,
)
from .listing import expand, expand_paths, include_fields, public, with_includes
from .router import Route, Router
from .store import Store
from .unimplemented import refuse_unimplemented
from .wire import decode_form, dumps


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One API request as a handler sees it."""

    sandbox: Sandbox
    method: str
    path: str
    params: dict[str, Any]
    request_id: str
    idempotency_key: str | None = None

    @property
    def store(self) -> Store:
        return self.sandbox.store

    def now(self, clock_id: str | None = None) -> int:
        return self.sandbox.now(clock_id)


Ticker = Callable[["Sandbox", "str | None", int], None]
EventListener = Callable[[dict[str, Any]], None]
Validator = Callable[[Route, dict[str, Any]], None]
# A page handler answers a non-API path (hosted invoice, PDF, portal) or returns None.
Page = Callable[["Sandbox", str, str, dict[str, str], bytes], "Response | None"]


@dataclass
class SandboxConfig:
    """Behaviour switches; the defaults are Stripe's."""

    # Days after the first failed attempt on which a failed invoice is retried (Smart Retries
    # off, a custom schedule: failures on days 1, 4, 7 and 8 when the first attempt fails on 1).
    retry_days: tuple[int, ...] = (3, 6, 7)
    # What a subscription becomes after the last retry fails: "canceled", "unpaid", "past_due".
    after_final_failure: str = "canceled"
    # Seconds a subscription invoice stays draft before it is finalized and charged.
    draft_grace_seconds: int = 3600
    # Seconds an idempotency key is remembered (Stripe: 24 hours).
    idempotency_ttl_seconds: int = 24 * 3600
    # Seconds a meter event identifier is kept unique (Stripe: at least 24 hours).
    meter_identifier_ttl_seconds: int = 24 * 3600
    # Validate request parameters against stripe-python's declared parameter types.
    validate_params: bool = True
    # Base URL for links the sandbox serves (hosted invoice pages, PDFs, portal).
    public_url: str = "http://127.0.0.1:12111"


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None) -> None:
        from .resources import PAGES, ROUTE_GROUPS, TICKERS

        self.config = config or SandboxConfig()
        self.store = Store()
        self.lock = threading.RLock()
        self.router = Router(ROUTE_GROUPS)
        self.tickers: list[Ticker] = list(TICKERS)
        self.pages: list[Page] = list(PAGES)
        self.listeners: list[EventListener] = []
        self.validator: Validator | None = None
        self.hooks_before: list[Callable[[str, str, dict[str, str]], Response | None]] = []
        self.idempotency: dict[str, tuple[float, str, Response]] = {}
        self._clock_offset = 0
        if self.config.validate_params:
            from .validation import build_validator

            self.validator = build_validator(self.router)

    def set_public_url(self, url: str) -> None:
        """Serve links (hosted invoices, PDFs, portal) from `url` from now on; the links
        already handed out move with it, so a restart on another port breaks none of them."""
        from .invoicing import repoint_pages

        with self.lock:
            self.config.public_url = url
            repoint_pages(self)

    # --- time ------------------------------------------------------------------------------

    def now(self, clock_id: str | None = None) -> int:
        """Unix seconds for objects on `clock_id` (a test clock), or for everything else."""
        if clock_id:
            clock = self.store.get("test_helpers.test_clock", clock_id)
            if clock is not None:
                return int(clock["frozen_time"])
        return int(time.time()) + self._clock_offset

    def run_due(self, clock_id: str | None, until: int) -> None:
        """Let every billing ticker run the work that falls due up to `until`."""
        for ticker in self.tickers:
            ticker(self, clock_id, until)

    # --- events ------------------------------------------------------------------------------

    def emit(
        self,
        event_type: str,
        obj: dict[str, Any],
        previous_attributes: dict[str, Any] | None = None,
        request: Call | None = None,
    ) -> dict[str, Any]:
        """Record an event with a snapshot of `obj` as it stands now and tell listeners."""
        event: dict[str, Any] = {
            "id": self.store.new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": public(obj)},
            "livemode": False,
            "pending_webhooks": 0,
            "request": {
                "id": request.request_id if request else None,
                "idempotency_key": request.idempotency_key if request else None,
            },
            "type": event_type,
        }
        if previous_attributes is not None:
            event["data"]["previous_attributes"] = public(previous_attributes)
        self.store.put(event)
        for listener in self.listeners:
            listener(event)
        return event

    # --- requests ----------------------------------------------------------------------------

    def handle(
        self, method: str, url: str, headers: dict[str, str] | None, body: bytes | str | None
    ) -> Response:
        method = method.upper()
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        request_id = "req_" + secrets.token_hex(7)
        parts = urlsplit(url)
        path = parts.path
        try:
            for hook in self.hooks_before:
                early = hook(method, path, headers)
                if early is not None:
                    early.headers.setdefault("Request-Id", request_id)
                    return early
            self._authenticate(headers, path)
            params = self._params(method, parts.query, headers, body)
            key = headers.get("idempotency-key") if method == "POST" else None
            fingerprint = _fingerprint(method, path, params) if key else ""
            with self.lock:
                if key:
                    replay = self._replay(key, fingerprint, request_id)
                    if replay is not None:
                        return replay
                try:
                    response = self._dispatch(method, path, params, request_id, key)
                except SandboxError as error:
                    response = self._error(error, request_id)
                # Stripe replays errors too (a declined card stays declined for that key).
                if key and response.status != 429 and response.status < 500:
                    self.idempotency[key] = (time.time(), fingerprint, response)
            return response
        except SandboxError as error:
            return self._error(error, request_id)
        except Exception as error:  # a sandbox bug must still look like Stripe's 500
            return self._error(ApiError(f"Sandbox internal error: {error!r}"), request_id)

    def page(
        self, method: str, url: str, headers: dict[str, str] | None, body: bytes | None
    ) -> Response:
        """Serve a non-API path: pages need no API key (they are links sent to customers)."""
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        with self.lock:
            for page in self.pages:
                response = page(self, method, url, headers, body or b"")
                if response is not None:
                    return response
        return Response(404, b"Not found", {"Content-Type": "text/plain"})

    def _authenticate(self, headers: dict[str, str], path: str) -> None:
        auth = headers.get("authorization", "")
        key = auth[7:] if auth.lower().startswith("bearer ") else ""
        if key.startswith("ek_test_") and path == "/v2/billing/meter_event_stream":
            from .resources.meters import stream_token_valid

            with self.lock:
                if stream_token_valid(self, key):
                    return
            raise AuthenticationError("The meter event session token is invalid or expired.")
        if not key:
            raise AuthenticationError(
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth "
                "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
            )
        if not (key.startswith("sk_test_") or key.startswith("rk_test_")):
            shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:]
            raise AuthenticationError(f"Invalid API Key provided: {shown}")

    @staticmethod
    def _params(
        method: str, query: str, headers: dict[str, str], body: bytes | str | None
    ) -> dict[str, Any]:
        text = body.decode() if isinstance(body, bytes) else (body or "")
        params = decode_form(query) if query else {}
        if text:
            if headers.get("content-type", "").startswith("application/json"):
                try:
                    loaded = json.loads(text)
                except json.JSONDecodeError as error:
                    raise InvalidRequestError(f"Invalid JSON body: {error}") from None
                if not isinstance(loaded, dict):
                    raise InvalidRequestError("The JSON body must be an object.")
                params.update(loaded)
            else:
                params.update(decode_form(text))
        return params

    def _dispatch(
        self, method: str, path: str, params: dict[str, Any], request_id: str, key: str | None
    ) -> Response:
        found = self.router.match(method, path)
        if found is None:
            raise UrlNotFoundError(method, path)
        route, path_params = found
        self.run_due(None, self.now())
        expand_list = expand_paths(params)
        includes = include_fields(params)
        if self.validator is not None:
            self.validator(route, params)
        refuse_unimplemented(route.method, route.pattern, params)
        call = Call(self, method, path, params, request_id, key)
        result = route.handler(call, **path_params)
        if expand_list:
            result = expand(result, expand_list, self.store)
        result = with_includes(result, includes)
        return Response(200, dumps(public(result)), self._headers(request_id, key))

    def _headers(self, request_id: str, key: str | None) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Request-Id": request_id,
            "Stripe-Version": API_VERSION,
        }
        if key:
            headers["Idempotency-Key"] = key
        return headers

    def _error(self, error: SandboxError, request_id: str) -> Response:
        headers = self._headers(request_id, None)
        if error.status >= 500:
            headers["Stripe-Should-Retry"] = "true"
        return Response(error.status, dumps(error.body(request_id)), headers)

    # --- idempotency -------------------------------------------------------------------------

    def _replay(self, key: str, fingerprint: str, request_id: str) -> Response | None:
        self._expire_keys()
        saved = self.idempotency.get(key)
        if saved is None:
            return None
        _, saved_fingerprint, response = saved
        if fingerprint != saved_fingerprint:
            raise IdempotencyError(
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request."
            )
        headers = dict(response.headers, **{"Idempotent-Replayed": "true"})
        headers["Original-Request"] = response.headers.get("Request-Id", "")
        headers["Request-Id"] = request_id
        return Response(response.status, response.body, headers)

    def _expire_keys(self) -> None:
        # Keys are stored only when absent, so the dict is in time order: drop from the front
        # until a live one (a scan of every key made each keyed request O(keys)).
        horizon = time.time() - self.config.idempotency_ttl_seconds
        while self.idempotency:
            key = next(iter(self.idempotency))
            if self.idempotency[key][0] >= horizon:
                break
            del self.idempotency[key]


def _fingerprint(method: str, path: str, params: dict[str, Any]) -> str:
    return f"{method} {path} " + json.dumps(params, sort_keys=True, default=str)
