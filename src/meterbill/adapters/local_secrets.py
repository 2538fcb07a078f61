"""Secrets a development set-up makes for itself, kept in one JSON file only its owner reads.

Without METERBILL_API_TOKEN (or LINK_SIGNING_SECRET) in development, every process used to make
its own random value: the CLI could not call the server, and a portal link made by one command
was refused by the server. A value made once and kept here (`var/meterbill.secrets.json`, mode
0600) is the same for the server, every command and a restarted server.

The file is read and written under an exclusive `flock`, so two processes starting at once
agree on one value. Where `fcntl` is missing (not POSIX) it works without the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ..domain.errors import ConfigurationError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

FILE_MODE = 0o600


class LocalSecrets:
    """Named secrets in `path`; each made once by `get_or_create` and kept."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def get(self, name: str) -> str | None:
        if not self.path.exists():
            return None
        with self._locked() as fd:
            return self._read(fd).get(name)

    def get_or_create(self, name: str, make: Callable[[], str]) -> str:
        """The secret called `name`, made with `make()` and saved if there is none yet."""
        with self._locked() as fd:
            values = self._read(fd)
            value = values.get(name)
            if value is None:
                value = values[name] = make()
                data = (json.dumps(values, indent=2, sort_keys=True) + "\n").encode()
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, data)
                os.fsync(fd)
            return value

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Created owner-only; an existing file is narrowed too, since it holds credentials.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, FILE_MODE)
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # closing releases the lock

    def _read(self, fd: int) -> dict[str, str]:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        text = b"".join(chunks).decode("utf-8", errors="replace").strip()
        if not text:
            return {}
        try:
            values = json.loads(text)
        except ValueError:
            values = None
        if not isinstance(values, dict) or not all(
                isinstance(v, str) for v in values.values()):
            raise ConfigurationError(
                f"{self.path} is not a meterbill secrets file (a JSON object of strings). "
                "Fix: delete it; new secrets are made at the next start (links and API tokens "
                "made with the old ones stop working).")
        return values
