"""Signed webhook delivery, off the request path.

Each event is matched to the enabled webhook endpoints that listen for it (`enabled_events`,
`*` for all); the event's `pending_webhooks` counts the endpoints that have not yet answered 2xx.
Deliveries run on background threads, so an API call never waits for a receiver. Each is signed
as Stripe signs: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the
endpoint's whsec_ secret>`, which `stripe.Webhook.construct_event` verifies.

A non-2xx answer (redirects included) or no answer within `timeout_seconds` is retried after
`retry_base_seconds`, then twice that, and so on, up to `max_attempts` attempts in all. Stripe
retries test-mode events three times over a few hours (live mode: for up to three days); tests
set a tiny base. Test knobs: `duplicate` (each event delivered twice, as Stripe sometimes does),
`shuffle_seconds` (each delivery held back a random time up to that, so events arrive out of
order), `delay_seconds` (every first attempt held back that long), `drop_next` (the next that
many events are never delivered, as when a network or a receiver loses them for good: only
the event list has them, which is what a catch-up reads).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import heapq
import hmac
import itertools
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .listing import public
from .wire import dumps

if TYPE_CHECKING:
    from .engine import Sandbox

_USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
# Threads that have nothing to do for this long exit; the next delivery starts them again.
_IDLE_EXIT_SECONDS = 2.0


@dataclass
class DeliveryConfig:
    timeout_seconds: float = 10.0
    retry_base_seconds: float = 1200.0
    max_attempts: int = 4  # the first attempt and three retries, as in test mode
    duplicate: bool = False
    shuffle_seconds: float = 0.0
    delay_seconds: float = 0.0
    workers: int = 4
    seed: int | None = None  # for the shuffle's dice, so a shuffled order can be replayed
    drop_next: int = 0  # events still to lose (counted down as they are dropped)

    def validate(self) -> None:
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {self.timeout_seconds}")
        if self.retry_base_seconds < 0 or self.shuffle_seconds < 0 or self.delay_seconds < 0:
            raise ValueError("retry_base_seconds, shuffle_seconds and delay_seconds must not be "
                             "negative")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.drop_next < 0:
            raise ValueError(f"drop_next must not be negative, got {self.drop_next}")


_FIELDS = {f.name: f for f in dataclasses.fields(DeliveryConfig)}


def coerce_delivery_config(values: dict[str, Any],
                           base: DeliveryConfig | None = None) -> DeliveryConfig:
    """A DeliveryConfig from loosely typed values (JSON, form strings); unknown keys refused."""
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown delivery setting(s): {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(_FIELDS))}")
    changes: dict[str, Any] = {}
    for name, raw in values.items():
        try:
            if name == "duplicate":
                changes[name] = raw if isinstance(raw, bool) else str(raw).lower() in (
                    "1", "true", "yes", "on")
            elif name == "seed":
                changes[name] = None if raw in (None, "") else int(raw)
            elif name in ("max_attempts", "workers", "drop_next"):
                changes[name] = int(raw)
            else:
                changes[name] = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: not a number: {raw!r}") from None
    config = dataclasses.replace(base or DeliveryConfig(), **changes)
    config.validate()
    return config


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` header value for `payload` sent at `timestamp`."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass
class DeliveryAttempt:
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    attempt: int
    status: int | None  # None: no answer (timeout, refused, reset)
    error: str | None
    at: float  # unix time

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    event_id: str = dataclasses.field(compare=False)
    event_type: str = dataclasses.field(compare=False)
    endpoint_id: str = dataclasses.field(compare=False)
    payload: bytes = dataclasses.field(compare=False)
    attempt: int = dataclasses.field(default=1, compare=False)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Stripe counts a redirect as a failed delivery; so do we."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Dispatcher:
    """The webhook sender of one sandbox (`sandbox.webhooks`)."""

    def __init__(self, sandbox: Sandbox, config: DeliveryConfig | None = None) -> None:
        self.sandbox = sandbox
        self.config = config or DeliveryConfig()
        self.config.validate()
        self.attempts: collections.deque[DeliveryAttempt] = collections.deque(maxlen=10_000)
        self._cond = threading.Condition()
        self._heap: list[_Job] = []
        self._ready: queue.Queue[_Job] = queue.Queue()
        self._seq = itertools.count()
        self._outstanding = 0  # jobs scheduled, queued or being sent
        self._scheduler: threading.Thread | None = None
        self._workers: set[threading.Thread] = set()
        self._delivered: set[tuple[str, str]] = set()
        self.dropped: list[str] = []  # ids of the events `drop_next` lost
        self._random = random.Random(self.config.seed)
        self._closed = False
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), _NoRedirect()
        )

    # --- public ------------------------------------------------------------------------------

    def configure(self, config: DeliveryConfig | None = None, **changes: Any) -> DeliveryConfig:
        """Replace the settings (`config`) or change some of them (`changes`)."""
        new = coerce_delivery_config(changes, config or self.config)
        with self._cond:
            self.config = new
            self._random = random.Random(new.seed)
        return new

    def on_event(self, event: dict[str, Any]) -> None:
        """Listener: runs inside `Sandbox.emit`, under the engine's lock; only schedules."""
        endpoints = [
            we for we in self.sandbox.store.all("webhook_endpoint")
            if we.get("status") == "enabled" and listens_to(we, event["type"])
        ]
        event["pending_webhooks"] = len(endpoints)
        if not endpoints:
            return
        with self._cond:
            if self.config.drop_next > 0:  # lost: Stripe still counts it pending
                self.config = dataclasses.replace(self.config,
                                                  drop_next=self.config.drop_next - 1)
                self.dropped.append(event["id"])
                return
        payload = dumps(public(event))
        config = self.config
        copies = 2 if config.duplicate else 1
        now = time.monotonic()
        with self._cond:
            for endpoint in endpoints:
                for _ in range(copies):
                    due = now + config.delay_seconds
                    if config.shuffle_seconds:
                        due += self._random.uniform(0, config.shuffle_seconds)
                    self._schedule(_Job(due, next(self._seq), event["id"], event["type"],
                                        endpoint["id"], payload))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is scheduled or in flight; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._outstanding:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def attempts_for(self, event_id: str | None = None,
                     endpoint_id: str | None = None) -> list[DeliveryAttempt]:
        with self._cond:
            return [a for a in self.attempts
                    if (event_id is None or a.event_id == event_id)
                    and (endpoint_id is None or a.endpoint_id == endpoint_id)]

    def close(self) -> None:
        """Drop what is scheduled and let the threads end."""
        with self._cond:
            self._closed = True
            self._outstanding -= len(self._heap)
            self._heap.clear()
            while True:
                try:
                    self._ready.get_nowait()
                except queue.Empty:
                    break
                self._outstanding -= 1
            self._cond.notify_all()

    # --- scheduling ----------------------------------------------------------------------------

    def _schedule(self, job: _Job) -> None:
        # Caller holds self._cond.
        if self._closed:
            return
        heapq.heappush(self._heap, job)
        self._outstanding += 1
        if self._scheduler is None or not self._scheduler.is_alive():
            self._scheduler = threading.Thread(target=self._schedule_loop,
                                               name="stripe-sandbox-webhooks", daemon=True)
            self._scheduler.start()
        self._cond.notify_all()

    def _schedule_loop(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._heap:
                    if not self._cond.wait(_IDLE_EXIT_SECONDS) and not self._heap:
                        self._scheduler = None
                        return
                    continue
                wait = self._heap[0].due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                self._ready.put(heapq.heappop(self._heap))
                if len(self._workers) < self.config.workers:
                    worker = threading.Thread(target=self._work_loop,
                                              name="stripe-sandbox-webhook-sender", daemon=True)
                    self._workers.add(worker)
                    worker.start()
            self._scheduler = None

    def _work_loop(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                job = self._ready.get(timeout=_IDLE_EXIT_SECONDS)
            except queue.Empty:
                with self._cond:
                    if self._ready.empty() or self._closed:
                        self._workers.discard(me)
                        return
                continue
            try:
                self._run(job)
            finally:
                with self._cond:
                    self._outstanding -= 1
                    self._cond.notify_all()

    # --- sending -------------------------------------------------------------------------------

    def _run(self, job: _Job) -> None:
        with self.sandbox.lock:
            endpoint = self.sandbox.store.get("webhook_endpoint", job.endpoint_id)
            if endpoint is None or endpoint.get("status") != "enabled":
                return  # deleted or disabled since: Stripe stops sending
            url, secret = endpoint["url"], endpoint["_secret"]
        with self._cond:
            if (job.event_id, job.endpoint_id) in self._delivered and job.attempt > 1:
                return  # the duplicate copy got through already
        status, error = self._post(url, secret, job.payload)
        attempt = DeliveryAttempt(job.event_id, job.event_type, job.endpoint_id, url,
                                  job.attempt, status, error, time.time())
        with self._cond:
            self.attempts.append(attempt)
            first_success = attempt.ok and (job.event_id, job.endpoint_id) not in self._delivered
            if attempt.ok:
                self._delivered.add((job.event_id, job.endpoint_id))
        if first_success:
            with self.sandbox.lock:
                event = self.sandbox.store.get("event", job.event_id)
                if event is not None and event.get("pending_webhooks", 0) > 0:
                    event["pending_webhooks"] -= 1
            return
        config = self.config
        if not attempt.ok and job.attempt < config.max_attempts:
            delay = config.retry_base_seconds * (2 ** (job.attempt - 1))
            retry = dataclasses.replace(job, due=time.monotonic() + delay,
                                        seq=next(self._seq), attempt=job.attempt + 1)
            with self._cond:
                self._schedule(retry)

    def _post(self, url: str, secret: str, payload: bytes) -> tuple[int | None, str | None]:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": _USER_AGENT,
            "Accept": "*/*; q=0.5, application/xml",
            "Cache-Control": "no-cache",
            "Stripe-Signature": sign(payload, secret, int(time.time())),
        }
        request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.config.timeout_seconds) as answer:
                answer.read()
                return answer.status, None
        except urllib.error.HTTPError as error:
            error.close()
            return error.code, None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            return None, f"{type(reason).__name__}: {reason}"


def listens_to(endpoint: dict[str, Any], event_type: str) -> bool:
    enabled = endpoint.get("enabled_events") or []
    return "*" in enabled or event_type in enabled


def install(sandbox: Sandbox, config: DeliveryConfig | None = None) -> Dispatcher:
    """Attach a `Dispatcher` as `sandbox.webhooks` (once) and return it; `config`, when given,
    replaces the current settings."""
    dispatcher = getattr(sandbox, "webhooks", None)
    if not isinstance(dispatcher, Dispatcher):
        dispatcher = Dispatcher(sandbox, config)
        sandbox.webhooks = dispatcher  # type: ignore[attr-defined]
        sandbox.listeners.append(dispatcher.on_event)
    elif config is not None:
        dispatcher.configure(config)
    return dispatcher


__all__ = [
    "DeliveryAttempt",
    "DeliveryConfig",
    "Dispatcher",
    "coerce_delivery_config",
    "install",
    "listens_to",
    "sign",
]
