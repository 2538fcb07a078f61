"""Limits and faults the sandbox can inject, all off by default.

- a rate limit: requests per second over a token bucket (Stripe: 25/s in test mode, 100/s in
  live mode), answered as Stripe answers: 429, error code `rate_limit`, header
  `Stripe-Rate-Limited-Reason`, and no `Stripe-Should-Retry` (Stripe's libraries do not retry
  genuine rate limits; set `rate_limit_should_retry` to let stripe-python's own retry run);
- lock timeouts: 429 `lock_timeout` with `Stripe-Should-Retry: true`, which stripe-python retries;
- injected 500 `api_error`s, added latency, and dropped connections, each at a given rate, either
  before the request reaches the engine (`drop_rate`) or after it ran with the answer lost
  (`drop_after_rate`, the case idempotency keys exist for);
- all of it limited to some paths by prefix (`paths`), or on every API path.

`install(sandbox)` attaches one `Faults` as `sandbox.faults` (idempotent); the control endpoint,
the command line and tests configure it through `Faults.configure`.
"""

from __future__ import annotations

import dataclasses
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .engine import Response
from .errors import ApiError, InvalidRequestError, RateLimitError, SandboxError
from .wire import dumps

if TYPE_CHECKING:
    from .engine import Sandbox

# Stripe's documented global limits, in requests per second.
TEST_MODE_RATE = 25.0
LIVE_MODE_RATE = 100.0
RATE_PRESETS = {"test": TEST_MODE_RATE, "live": LIVE_MODE_RATE}


@dataclass
class FaultConfig:
    rate_limit: float | None = None  # requests per second; None is no limit
    rate_limit_burst: int | None = None  # bucket size; defaults to one second's worth
    rate_limit_should_retry: bool = False  # add `Stripe-Should-Retry: true` to rate-limit 429s
    lock_timeout_rate: float = 0.0
    error_rate: float = 0.0
    latency_ms: int = 0
    latency_rate: float = 1.0  # share of requests that get `latency_ms` (when it is set)
    drop_rate: float = 0.0
    drop_after_rate: float = 0.0
    paths: tuple[str, ...] = ()  # path prefixes; empty means every API path
    seed: int | None = None

    def validate(self) -> None:
        for name in ("lock_timeout_rate", "error_rate", "latency_rate", "drop_rate",
                     "drop_after_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError(f"rate_limit must be positive, got {self.rate_limit}")
        if self.rate_limit_burst is not None and self.rate_limit_burst < 1:
            raise ValueError(f"rate_limit_burst must be at least 1, got {self.rate_limit_burst}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, got {self.latency_ms}")

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["paths"] = list(self.paths)
        return data


_FIELDS = {f.name: f for f in dataclasses.fields(FaultConfig)}


def coerce_config(values: dict[str, Any], base: FaultConfig | None = None) -> FaultConfig:
    """A FaultConfig from loosely typed values (JSON, form strings, CLI); unknown keys refused."""
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(_FIELDS))}")
    changes: dict[str, Any] = {}
    for name, raw in values.items():
        changes[name] = _coerce(name, raw)
    config = dataclasses.replace(base or FaultConfig(), **changes)
    config.validate()
    return config


def _coerce(name: str, raw: Any) -> Any:
    if name == "paths":
        if raw in (None, ""):
            return ()
        items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
        return tuple(str(p).strip() for p in items if str(p).strip())
    if name == "rate_limit_should_retry":
        if isinstance(raw, bool):
            return raw
        return str(raw).lower() in ("1", "true", "yes", "on")
    if raw in (None, "", "none", "off"):
        return None if name in ("rate_limit", "rate_limit_burst", "seed") else _FIELDS[name].default
    if name == "rate_limit" and str(raw).lower() in RATE_PRESETS:
        return RATE_PRESETS[str(raw).lower()]
    try:
        if name in ("rate_limit_burst", "latency_ms", "seed"):
            return int(raw)
        return float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: not a number: {raw!r}") from None


@dataclass
class FaultStats:
    rate_limited: int = 0
    lock_timeouts: int = 0
    errors: int = 0
    delayed: int = 0
    dropped: int = 0
    dropped_after: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class Faults:
    """The fault injector of one sandbox. Thread-safe; hooks run outside the engine's lock."""

    def __init__(
        self,
        config: FaultConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._lock = threading.Lock()
        self.clock = clock  # replaceable in tests, with `sleep`
        self.sleep = sleep
        self.stats = FaultStats()
        self.config = FaultConfig()
        self._random = random.Random()
        self._bucket = _Bucket(0.0, 0.0)
        self.configure(config or FaultConfig())

    # --- configuration -------------------------------------------------------------------------

    def configure(self, config: FaultConfig | None = None, **changes: Any) -> FaultConfig:
        """Replace the whole configuration (`config`), or change some settings (`changes`) of
        `config` or, without it, of the current one."""
        if changes:
            new = coerce_config(changes, config or self.config)
        else:
            new = config or FaultConfig()
            new.validate()
        with self._lock:
            self.config = new
            self._random = random.Random(new.seed)
            burst = self._burst(new)
            self._bucket = _Bucket(float(burst), self.clock())
        return new

    def reset(self) -> FaultConfig:
        """Everything off, counters to zero."""
        with self._lock:
            self.stats = FaultStats()
        return self.configure(FaultConfig())

    @property
    def active(self) -> bool:
        c = self.config
        return bool(c.rate_limit or c.lock_timeout_rate or c.error_rate or c.latency_ms
                    or c.drop_rate or c.drop_after_rate)

    # --- hooks ---------------------------------------------------------------------------------

    def before(self, method: str, path: str, headers: dict[str, str]) -> Response | None:
        """Run before the engine: rate limit, latency, injected errors and drops."""
        config = self.config
        if not self.active or not self._applies(config, path):
            return None
        with self._lock:
            limited = config.rate_limit is not None and not self._take_token(config)
            roll = self._random.random
            delay = config.latency_ms > 0 and roll() < config.latency_rate
            drop = not limited and roll() < config.drop_rate
            lock_timeout = not (limited or drop) and roll() < config.lock_timeout_rate
            error = not (limited or drop or lock_timeout) and roll() < config.error_rate
            if limited:
                self.stats.rate_limited += 1
            if delay:
                self.stats.delayed += 1
            if drop:
                self.stats.dropped += 1
            if lock_timeout:
                self.stats.lock_timeouts += 1
            if error:
                self.stats.errors += 1
        if delay:
            self.sleep(config.latency_ms / 1000)
        if limited:
            headers_out = {"Stripe-Rate-Limited-Reason": "global-rate"}
            if config.rate_limit_should_retry:
                headers_out["Stripe-Should-Retry"] = "true"
            return _error_response(RateLimitError(), headers_out)
        if drop:
            return Response(0, b"")
        if lock_timeout:
            return _error_response(_lock_timeout(), {"Stripe-Should-Retry": "true"})
        if error:
            return _error_response(
                ApiError("An unknown error occurred (injected by the sandbox's fault settings)."),
                {"Stripe-Should-Retry": "true"},
            )
        return None

    def after(self, method: str, path: str, response: Response) -> Response:
        """Run after the engine: lose the answer of a request that did run."""
        config = self.config
        if not config.drop_after_rate or not self._applies(config, path):
            return response
        with self._lock:
            lost = self._random.random() < config.drop_after_rate
            if lost:
                self.stats.dropped_after += 1
        return Response(0, b"") if lost else response

    # --- internals -----------------------------------------------------------------------------

    @staticmethod
    def _applies(config: FaultConfig, path: str) -> bool:
        return not config.paths or any(path.startswith(prefix) for prefix in config.paths)

    @staticmethod
    def _burst(config: FaultConfig) -> int:
        if config.rate_limit_burst is not None:
            return config.rate_limit_burst
        return max(1, int(config.rate_limit or 1))

    def _take_token(self, config: FaultConfig) -> bool:
        now = self.clock()
        rate = float(config.rate_limit or 0)
        bucket = self._bucket
        bucket.tokens = min(float(self._burst(config)), bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False


def _lock_timeout() -> SandboxError:
    return InvalidRequestError(
        "This object cannot be accessed right now because another API request or Stripe "
        "process is currently accessing it. If you see this error intermittently, retry the "
        "request. (Injected by the sandbox's fault settings.)",
        code="lock_timeout",
        status=429,
    )


def _error_response(error: SandboxError, extra_headers: dict[str, str]) -> Response:
    from . import API_VERSION

    request_id = "req_" + secrets.token_hex(7)
    headers = {
        "Content-Type": "application/json",
        "Request-Id": request_id,
        "Stripe-Version": API_VERSION,
        **extra_headers,
    }
    return Response(error.status, dumps(error.body(request_id)), headers)


# --- wiring into a sandbox ------------------------------------------------------------------

AfterHook = Callable[[str, str, Response], Response]


def after_request(sandbox: Sandbox, hook: AfterHook) -> None:
    """Run `hook(method, path, response)` on each API answer, outside the engine's lock.

    The engine has `hooks_before` only; this wraps `sandbox.handle` once per sandbox.
    """
    hooks: list[AfterHook] | None = getattr(sandbox, "_after_hooks", None)
    if hooks is None:
        hooks = []
        sandbox._after_hooks = hooks  # type: ignore[attr-defined]
        inner = sandbox.handle

        def handle(method: str, url: str, headers: dict[str, str] | None,
                   body: bytes | str | None) -> Response:
            response = inner(method, url, headers, body)
            path = urlsplit(url).path
            for after in hooks:
                response = after(method.upper(), path, response)
            return response

        sandbox.handle = handle  # type: ignore[method-assign]
    if hook not in hooks:
        hooks.append(hook)


def install(sandbox: Sandbox) -> Faults:
    """Attach a `Faults` to `sandbox` as `sandbox.faults` (once) and return it."""
    existing = getattr(sandbox, "faults", None)
    if isinstance(existing, Faults):
        return existing
    faults = Faults()
    sandbox.faults = faults  # type: ignore[attr-defined]
    sandbox.hooks_before.insert(0, faults.before)
    after_request(sandbox, faults.after)
    return faults


__all__ = [
    "LIVE_MODE_RATE",
    "RATE_PRESETS",
    "TEST_MODE_RATE",
    "FaultConfig",
    "FaultStats",
    "Faults",
    "after_request",
    "coerce_config",
    "install",
]
