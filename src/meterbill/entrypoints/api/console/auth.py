"""Console login: sessions, CSRF tokens and the login rate limit.

Who may log in: whoever holds the API token (METERBILL_API_TOKEN, or the development token of
`meterbill api-token`), or a user of CONSOLE_ADMIN_USERS (`name:pbkdf2_sha256$iterations$salt$
hash`, made by `meterbill console hash-password`). A login makes a random session id, kept in
this process (a restart logs everyone out, which is the safe way round) and sent as an
`HttpOnly`, `SameSite=Strict` cookie, `Secure` outside development. Each session has its own
CSRF token, which every console form carries and every POST must echo; the login form, made
before there is a session, uses a double-submit cookie instead.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from meterbill.domain.passwords import password_matches

SESSION_COOKIE = "meterbill_console"
LOGIN_CSRF_COOKIE = "meterbill_login_csrf"
SESSION_SECONDS = 8 * 3600
MAX_SESSIONS = 1000
LOGIN_FAILURES = 5  # per client address and window, then 429
LOGIN_WINDOW_SECONDS = 300.0
MAX_TRACKED_CLIENTS = 10_000  # addresses with recent failures kept; older ones are dropped


def parse_admin_users(value: str) -> dict[str, str]:
    """`alice:pbkdf2_sha256$...,bob:...` → {name: stored hash}; ValueError names a bad entry."""
    users: dict[str, str] = {}
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        name, _, stored = entry.partition(":")
        if not name or not stored.startswith("pbkdf2_sha256$") or stored.count("$") != 3:
            raise ValueError(f"CONSOLE_ADMIN_USERS entry {name or entry!r} must be "
                             "name:pbkdf2_sha256$iterations$salt$hash (make one with "
                             "`meterbill console hash-password`)")
        users[name] = stored
    return users


@dataclass
class Session:
    user: str
    csrf: str
    expires: float


@dataclass
class ConsoleAuth:
    token: str
    users: Mapping[str, str]
    secure_cookies: bool
    sessions: dict[str, Session] = field(default_factory=dict)
    failures: dict[str, deque[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- logging in ------------------------------------------------------------------------

    def retry_after(self, client: str, now: float | None = None) -> int | None:
        """Seconds until `client` may try again, or None when it may now."""
        now = time.monotonic() if now is None else now
        with self.lock:
            recent = self.failures.get(client)
            while recent and recent[0] <= now - LOGIN_WINDOW_SECONDS:
                recent.popleft()
            if recent is None or len(recent) < LOGIN_FAILURES:
                return None
            return max(1, int(recent[0] + LOGIN_WINDOW_SECONDS - now) + 1)

    def authenticate(self, client: str, user: str, secret: str) -> str | None:
        """The user logged in (`admin` for the token), or None (and the failure counted)."""
        name: str | None = None
        if not user.strip() and secret:
            if hmac.compare_digest(secret.encode(), self.token.encode()):
                name = "admin"
        elif user in self.users and password_matches(secret, self.users[user]):
            name = user
        if name is None:
            now = time.monotonic()
            with self.lock:
                if client not in self.failures and len(self.failures) >= MAX_TRACKED_CLIENTS:
                    self._forget_before(now - LOGIN_WINDOW_SECONDS)
                self.failures.setdefault(client, deque()).append(now)
        return name

    def _forget_before(self, cutoff: float) -> None:
        """Drop clients whose last failure is older than `cutoff`; if none is, the oldest
        half (a flood of addresses must not grow memory without bound)."""
        stale = [c for c, times in self.failures.items() if not times or times[-1] <= cutoff]
        if not stale:
            by_age = sorted(self.failures, key=lambda c: self.failures[c][-1])
            stale = by_age[: len(by_age) // 2]
        for client in stale:
            del self.failures[client]

    def start(self, user: str) -> str:
        session_id = secrets.token_urlsafe(32)
        with self.lock:
            self._expire()
            if len(self.sessions) >= MAX_SESSIONS:  # the oldest makes room
                oldest = min(self.sessions, key=lambda k: self.sessions[k].expires)
                del self.sessions[oldest]
            self.sessions[session_id] = Session(user, secrets.token_urlsafe(32),
                                                time.time() + SESSION_SECONDS)
        return session_id

    def session(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self.lock:
            found = self.sessions.get(session_id)
            if found is None or found.expires < time.time():
                self.sessions.pop(session_id, None)
                return None
            return found

    def end(self, session_id: str | None) -> None:
        with self.lock:
            self.sessions.pop(session_id or "", None)

    def _expire(self) -> None:
        now = time.time()
        for key in [k for k, s in self.sessions.items() if s.expires < now]:
            del self.sessions[key]


def csrf_ok(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(
        str(expected).encode(), str(given).encode())
