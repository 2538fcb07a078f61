"""One lasting Stripe sandbox per database, shared by `meterbill serve` and the other commands.

In sandbox mode (no STRIPE_SECRET_KEY, no STRIPE_API_BASE) `bootstrap.build` gives each process
a fresh in-process sandbox. Left alone, every CLI command would talk to a Stripe that vanishes
when it ends, while the database kept rows pointing at it. So the entrypoints keep the sandbox's
state in a data file next to the database (`var/meterbill.db` → `var/meterbill.stripe-sandbox
.json`), written by `stripe_sandbox.persistence`, and guard it with a lock file:

- `meterbill serve` holds the lock while it runs and writes its sandbox's URL into it;
- another command that needs Stripe finds that URL and talks to the running server's sandbox
  over HTTP (as with STRIPE_API_BASE), so both see the same objects; without a server it takes
  the lock itself, loads the data file, and saves it when it ends.

Locks are `flock` locks (POSIX); where `fcntl` is missing, commands run without the guard.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import IO, Any

from meterbill.config import Settings

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

SUFFIX = ".stripe-sandbox"


def uses_in_process_sandbox(settings: Settings) -> bool:
    return settings.mode == "sandbox" and not settings.stripe_api_base


def data_file(settings: Settings) -> Path:
    """Where the in-process sandbox of `settings.database_url` keeps its state."""
    return settings.state_file(SUFFIX + ".json")


class SandboxLock:
    """An exclusive lock on `<data file>.lock`, whose content says who holds it."""

    def __init__(self, data: Path) -> None:
        self.path = data.with_suffix(".lock")
        self._handle: IO[str] | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return False
        self._handle = handle
        self.write_info({"pid": os.getpid()})
        return True

    def holder(self) -> dict[str, Any]:
        """What the current holder wrote (`pid`, and `url` for a running server)."""
        try:
            info = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def write_info(self, info: dict[str, Any]) -> None:
        assert self._handle is not None, "write_info needs the lock"
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(json.dumps(info))
        self._handle.flush()

    def release(self) -> None:
        if self._handle is None:
            return
        with contextlib.suppress(OSError):
            self._handle.seek(0)
            self._handle.truncate()
        if fcntl is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None


def acquire_or_find_server(lock: SandboxLock, wait_seconds: float = 15.0) -> str | None:
    """Take `lock`, or return the URL of the `meterbill serve` that holds it.

    Another short command holding it is waited for; `TimeoutError` after `wait_seconds`.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        if lock.try_acquire():
            return None
        url = lock.holder().get("url")
        if isinstance(url, str) and url:
            return url
        if time.monotonic() >= deadline:
            raise TimeoutError(str(lock.path))
        time.sleep(0.1)
