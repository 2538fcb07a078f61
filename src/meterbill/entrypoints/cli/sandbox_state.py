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

Locks are `flock` locks (entrypoints/cli/locked_file.py).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from meterbill.config import Settings

from .locked_file import LockedFile

SUFFIX = ".stripe-sandbox"


def uses_in_process_sandbox(settings: Settings) -> bool:
    return settings.mode == "sandbox" and not settings.stripe_api_base


def data_file(settings: Settings) -> Path:
    """Where the in-process sandbox of `settings.database_url` keeps its state."""
    return settings.state_file(SUFFIX + ".json")


class SandboxLock:
    """An exclusive lock on `<data file>.lock`, whose content says who holds it."""

    def __init__(self, data: Path) -> None:
        self.file = LockedFile(data.with_suffix(".lock"))
        self.path = self.file.path

    def try_acquire(self) -> bool:
        if not self.file.try_lock():
            return False
        self.write_info({"pid": os.getpid()})
        return True

    def holder(self) -> dict[str, Any]:
        """What the current holder wrote (`pid`, and `url` for a running server)."""
        return self.file.read()

    def write_info(self, info: dict[str, Any]) -> None:
        self.file.write(info)

    def release(self) -> None:
        self.file.unlock(keep=False)


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
