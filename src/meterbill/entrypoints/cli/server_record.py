"""Where the running `meterbill serve` listens, recorded beside the database in every mode.

`serve` holds an exclusive `flock` on `var/meterbill.server.json` while it runs and writes into
it its pid, its API URL and (in sandbox mode) its Stripe sandbox's URL. Another command finds the
server there and asks it for what it holds (the DuckDB usage store); the lock tells a live
server from the record a dead one left behind, which stays on disk on purpose: the next
`serve` reads its sandbox port from it, so the sandbox keeps its port (and its invoice links
keep working) across restarts.

Where `fcntl` is missing (not POSIX), whether the recorded pid still runs decides instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from meterbill.config import Settings

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

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
        self.path = path
        self._handle: IO[str] | None = None

    # --- the server's side -------------------------------------------------------------------

    def claim(self, wait_seconds: float = 2.0) -> bool:
        """Take the record for this process; False while another live server holds it.

        Probes by other commands hold the lock for an instant, hence the short wait."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_seconds
        while True:
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
            if fcntl is None:
                if _pid_alive(_read(self.path).get("pid")):
                    handle.close()
                    return False
                break
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                handle.close()
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)
        self._handle = handle
        return True

    def publish(self, info: dict[str, Any]) -> None:
        assert self._handle is not None, "publish needs the record claimed"
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(json.dumps(info))
        self._handle.flush()

    def release(self) -> None:
        """Unlock, leaving the content for the next server (a dead server's record)."""
        if self._handle is None:
            return
        if fcntl is None:
            with contextlib.suppress(OSError):
                self.publish({k: v for k, v in self.last().items() if k != "pid"})
        else:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None

    # --- everyone else's side ----------------------------------------------------------------

    def last(self) -> dict[str, Any]:
        """What the last server wrote, running or not ({} when there was none)."""
        return _read(self.path)

    def running(self, wait_seconds: float = 5.0) -> dict[str, Any] | None:
        """The record of the live server (with its `api` URL), or None when none runs.

        A server that has just claimed the record but not yet written it is waited for."""
        deadline = time.monotonic() + wait_seconds
        while self.path.exists() and self._held():
            info = self.last()
            if isinstance(info.get("api"), str):
                return info
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        return None

    def _held(self) -> bool:
        if fcntl is None:
            return _pid_alive(self.last().get("pid"))
        try:
            handle = open(self.path, encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError:
            return False
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True  # a server holds it
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False


def remembered_port(info: dict[str, Any], key: str) -> int | None:
    """The port of a URL in a record (`sandbox_url`), if it names one."""
    url = info.get(key)
    if not isinstance(url, str):
        return None
    try:
        return urlsplit(url).port
    except ValueError:
        return None


def _read(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):  # absent, or caught halfway through a write
        return {}
    return info if isinstance(info, dict) else {}


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True
