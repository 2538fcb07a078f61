"""Bearer-token authentication for every route but `/health` and `/webhooks/stripe`.

Which token is valid is decided once, when the app is made (`resolve_api_token`):
- `METERBILL_API_TOKEN` set → that token;
- not set in production → the app refuses to start (an open billing API is never a default);
- not set elsewhere → a random token made once and kept in the local secrets file beside the
  database (`var/meterbill.secrets.json`), so the server, every CLI command and a restarted
  server agree on it; `meterbill api-token` prints it.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from meterbill.adapters.local_secrets import LocalSecrets
from meterbill.bootstrap.local import API_TOKEN_SECRET, local_secrets, new_secret
from meterbill.config import Settings

log = logging.getLogger("meterbill.api")

_bearer = HTTPBearer(auto_error=False, description="METERBILL_API_TOKEN")


class MissingApiToken(RuntimeError):
    """Raised at start-up in production when METERBILL_API_TOKEN is not set."""


def resolve_api_token(settings: Settings, kept: LocalSecrets | None = None) -> tuple[str, bool]:
    """The token the API accepts, and whether it is the kept development one (not configured).

    `kept` is the local secrets file (default: the one beside the database)."""
    configured = settings.meterbill_api_token
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value(), False
    if settings.environment == "production":
        raise MissingApiToken(
            "METERBILL_API_TOKEN is not set. In production the API refuses to start without "
            "it: set METERBILL_API_TOKEN to a long random value (e.g. `python -c \"import "
            "secrets; print(secrets.token_urlsafe(32))\"`)."
        )
    kept = kept or local_secrets(settings)
    return kept.get_or_create(API_TOKEN_SECRET, new_secret), True


def announce_kept_token(settings: Settings) -> None:
    log.warning(
        "METERBILL_API_TOKEN is not set: the API accepts the development token kept in %s. "
        "Print it with `meterbill api-token` (e.g. `export METERBILL_API_TOKEN=$(meterbill "
        "api-token)`); set METERBILL_API_TOKEN to choose one.",
        local_secrets(settings).path,
    )


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """FastAPI dependency: 401 unless the request carries the API token."""
    expected: str = request.app.state.api_token
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized(
            "Missing API token: send 'Authorization: Bearer <METERBILL_API_TOKEN>'."
        )
    # Constant-time: the time taken must not tell an attacker how much of a guess was right.
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise _unauthorized("Invalid API token.")


def _unauthorized(message: str) -> StarletteHTTPException:
    return StarletteHTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})
