"""Passwords of the console's configured admin users: PBKDF2-SHA256, salted, as text.

The stored form is `pbkdf2_sha256$iterations$salt$hash` (CONSOLE_ADMIN_USERS holds it;
`meterbill console hash-password` makes it), so the work factor can grow without breaking
hashes made before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

HASH_ITERATIONS = 600_000


def hash_password(password: str, *, salt: str | None = None,
                  iterations: int = HASH_ITERATIONS) -> str:
    """`pbkdf2_sha256$iterations$salt$hash`, the form CONSOLE_ADMIN_USERS holds."""
    salt = salt or secrets.token_urlsafe(12)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, _ = stored.split("$", 3)
        if scheme != "pbkdf2_sha256":
            return False
        expected = hash_password(password, salt=salt, iterations=int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(expected.encode(), stored.encode())
