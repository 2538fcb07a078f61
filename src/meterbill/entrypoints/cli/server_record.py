"""Where the running `meterbill serve` listens, recorded beside the database in every mode.

`serve` holds an exclusive `flock` on `var/meterbill.server.json` while it runs and writes into
it its pid, its API URL and (in sandbox mode) its Stripe sandbox's URL. Another command finds the
server there and asks it for what it holds (the DuckDB usage store); the lock tells a live
server from the record a dead one left behind, which stays on disk on purpose: the next
`serve` reads its sandbox port from it, so the sandbox keeps its port (and its invoice links
keep working) across restarts.

"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from meterbill.config import Settings

from .locked_file import LockedFile

SUFFIX = ".server.json"


def record_file(settings: Settings) -> Path:
    return settings.state_file(SUFFIX)


def reachable_url(host: str, port: int) -> str:
    """An address clients on this machine can reach: `0.0.0.0` and `::` listen everywhere."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


class ServerRecord:
    def __init__(self, path: Path) -> None:
        self.file = LockedFile(path)
        self.path = path

    # --- the server's side -------------------------------------------------------------------

    def claim(self, wait_seconds: float = 2.0) -> bool:
        """Take the record for this process; False while another live server holds it.

        Probes by other commands hold the lock for an instant, hence the short wait."""
        deadline = time.monotonic() + wait_seconds
        while not self.file.try_lock():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def publish(self, info: dict[str, Any]) -> None:
        self.file.write(info)

    def release(self) -> None:
        """Unlock, leaving the content for the next server (a dead server's record)."""
        self.file.unlock(keep=True)

    # --- everyone else's side ----------------------------------------------------------------

    def last(self) -> dict[str, Any]:
        """What the last server wrote, running or not ({} when there was none)."""
        return self.file.read()

    def running(self, wait_seconds: float = 5.0) -> dict[str, Any] | None:
        """The record of the live server (with its `api` URL), or None when none runs.

        A server that has just claimed the record but not yet written it is waited for."""
        deadline = time.monotonic() + wait_seconds
        while self.path.exists() and self.file.held_elsewhere():
            info = self.last()
            if isinstance(info.get("api"), str):
                return info
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        return None


def remembered_port(info: dict[str, Any], key: str) -> int | None:
    """The port of a URL in a record (`sandbox_url`), if it names one."""
    url = info.get(key)
    if not isinstance(url, str):
        return None
    try:
        return urlsplit(url).port
    except ValueError:
        return None
