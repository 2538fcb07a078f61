"""A small JSON file that a process holds with an exclusive `flock` while it runs, its content
saying who holds it and where it listens. `meterbill serve` holds two (the sandbox's lock and
the server record); other commands read them and probe whether the holder still runs.

Where `fcntl` is missing (not POSIX), whether the recorded pid still runs decides instead.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


class LockedFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    @property
    def locked(self) -> bool:
        """Whether this process holds the lock."""
        return self._handle is not None

    def try_lock(self) -> bool:
        """Take the lock without waiting; False while another live process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until unlock
        if fcntl is None:
            if _pid_alive(self.read().get("pid")):
                handle.close()
                return False
        else:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return False
        self._handle = handle
        return True

    def write(self, info: dict[str, Any]) -> None:
        assert self._handle is not None, "writing needs the lock"
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(json.dumps(info))
        self._handle.flush()

    def read(self) -> dict[str, Any]:
        """What the last holder wrote ({} when nothing, or caught halfway through a write)."""
        try:
            info = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def held_elsewhere(self) -> bool:
        """Whether another process holds the lock now."""
        if fcntl is None:
            return _pid_alive(self.read().get("pid"))
        try:
            handle = open(self.path, encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError:
            return False
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False

    def unlock(self, *, keep: bool) -> None:
        """Let go; `keep` leaves the content for the next holder to read."""
        if self._handle is None:
            return
        with contextlib.suppress(OSError):
            if keep and fcntl is None:  # the pid is what tells a holder there: drop it
                self.write({k: v for k, v in self.read().items() if k != "pid"})
            elif not keep:
                self._handle.seek(0)
                self._handle.truncate()
        if fcntl is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None


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
