"""`--data FILE`: the sandbox's state kept across restarts, as one JSON file.

Saved: every stored object (customers ... events, webhook endpoints with their secrets), the
idempotency keys with the answers they replay, and the engine's clock offset. Loaded once at
start; saved after each mutating request (any method but GET) and after events emitted by
background work, debounced (`debounce_seconds`, 0 saves at once), and at exit. Writes go to a
temporary file renamed over the old one, so a crash never leaves half a file.

Modules that keep state outside the store register it with `register_state`. Deliveries still
scheduled are not saved: after a restart, Stripe's retries of old events do not happen.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engine import Response

if TYPE_CHECKING:
    from .engine import Sandbox

FORMAT = "stripe_sandbox/1"

# name -> (dump(sandbox) -> JSON-able, load(sandbox, value)); for state kept outside the store.
_EXTRA_STATE: dict[str, tuple[Callable[[Sandbox], Any], Callable[[Sandbox, Any], None]]] = {}


class PersistenceError(RuntimeError):
    pass


def register_state(name: str, dump: Callable[[Sandbox], Any],
                   load: Callable[[Sandbox, Any], None]) -> None:
    """Have `--data` keep a piece of module state; `dump` runs under the engine's lock."""
    _EXTRA_STATE[name] = (dump, load)


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot save a {type(value).__name__} in the sandbox data file")


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$decimal" in obj:
        return Decimal(obj["$decimal"])
    return obj


def dump_state(sandbox: Sandbox) -> str:
    """The sandbox's state as JSON text; call with the engine's lock held."""
    keys = {
        key: {"time": saved_at, "fingerprint": fingerprint, "status": response.status,
              "headers": response.headers, "body": response.body.decode()}
        for key, (saved_at, fingerprint, response) in sandbox.idempotency.items()
    }
    state = {
        "format": FORMAT,
        "saved_at": int(time.time()),
        "clock_offset": sandbox._clock_offset,
        "store": sandbox.store.snapshot(),
        "idempotency": keys,
        "extra": {name: dump(sandbox) for name, (dump, _) in _EXTRA_STATE.items()},
    }
    return json.dumps(state, default=_encode, separators=(",", ":"))


def load_state(sandbox: Sandbox, text: str, source: str = "data file") -> None:
    try:
        state = json.loads(text, object_hook=_decode)
    except json.JSONDecodeError as error:
        raise PersistenceError(f"{source} is not valid JSON: {error}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise PersistenceError(
            f"{source} is not a stripe_sandbox data file of format {FORMAT!r} (found {found!r});"
            " move it away or pass another --data file."
        )
    with sandbox.lock:
        sandbox.store.restore(state.get("store") or {})
        sandbox._clock_offset = int(state.get("clock_offset") or 0)
        sandbox.idempotency = {
            key: (float(v["time"]), v["fingerprint"],
                  Response(int(v["status"]), v["body"].encode(), dict(v["headers"])))
            for key, v in (state.get("idempotency") or {}).items()
        }
        for name, value in (state.get("extra") or {}).items():
            if name in _EXTRA_STATE:
                _EXTRA_STATE[name][1](sandbox, value)
        has_endpoints = bool(sandbox.store.all("webhook_endpoint"))
    if has_endpoints:  # deliver to the saved endpoints from the first event on
        from .delivery import install

        install(sandbox)


class Persistence:
    """Keeps one sandbox's state in `path`."""

    def __init__(self, sandbox: Sandbox, path: str | os.PathLike[str],
                 debounce_seconds: float = 0.5) -> None:
        self.sandbox = sandbox
        self.path = Path(path)
        self.debounce_seconds = debounce_seconds
        self.saves = 0
        self._dirty = False
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()  # guards _dirty/_timer
        self._write_lock = threading.Lock()  # one writer at a time

    def load(self) -> bool:
        """Load `path` if it exists; False when there was nothing to load."""
        if not self.path.exists():
            return False
        load_state(self.sandbox, self.path.read_text(encoding="utf-8"), str(self.path))
        return True

    def save(self) -> None:
        with self._lock:
            self._dirty = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        with self._write_lock:
            with self.sandbox.lock:
                text = dump_state(self.sandbox)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp = self.path.with_name(self.path.name + ".tmp")
            temp.write_text(text, encoding="utf-8")
            os.replace(temp, self.path)
            self.saves += 1

    def mark_dirty(self) -> None:
        if self.debounce_seconds <= 0:
            self.save()
            return
        with self._lock:
            self._dirty = True
            if self._timer is None:
                self._timer = threading.Timer(self.debounce_seconds, self._flush)
                self._timer.daemon = True
                self._timer.start()

    def close(self) -> None:
        """Save what is not saved yet; called at exit."""
        with self._lock:
            dirty = self._dirty
        if dirty:
            self.save()

    def _flush(self) -> None:
        with self._lock:
            self._timer = None
            if not self._dirty:
                return
        self.save()

    # hooks ---------------------------------------------------------------------------------

    def _after_request(self, method: str, path: str, response: Response) -> Response:
        if method != "GET" and response.status != 0:
            self.mark_dirty()
        return response

    def _on_event(self, event: dict[str, Any]) -> None:
        # Runs under the engine's lock: never save here, only schedule.
        with self._lock:
            self._dirty = True
            if self._timer is None:
                self._timer = threading.Timer(max(self.debounce_seconds, 0.05), self._flush)
                self._timer.daemon = True
                self._timer.start()


def attach(sandbox: Sandbox, path: str | os.PathLike[str],
           debounce_seconds: float = 0.5, *, at_exit: bool = True) -> Persistence:
    """Load `path` into `sandbox` (if it exists) and keep it saved from now on."""
    from .faults import after_request

    keeper = Persistence(sandbox, path, debounce_seconds)
    keeper.load()
    after_request(sandbox, keeper._after_request)
    sandbox.listeners.append(keeper._on_event)
    sandbox.persistence = keeper  # type: ignore[attr-defined]
    if at_exit:
        atexit.register(keeper.close)
    return keeper


__all__ = ["FORMAT", "Persistence", "PersistenceError", "attach", "dump_state", "load_state",
           "register_state"]
