"""Bearer-token authentication for every route but `/health` and `/webhooks/stripe`.

`TokenFirst`, a pure ASGI middleware, checks the token of a request to a protected route
before anything reads its body: FastAPI reads and validates a body before it runs a route's
dependencies, so without it a request with no token and a malformed (or 60 MB) body was read
and answered 400. The dependency `require_token` stays on the protected routers: it documents
the scheme in OpenAPI and guards a route should the middleware be left out.

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
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from meterbill.adapters.local_secrets import LocalSecrets
from meterbill.bootstrap.local import API_TOKEN_SECRET, local_secrets, new_secret
from meterbill.config import Settings

from .errors import unauthorized_response

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


MISSING_TOKEN = "Missing API token: send 'Authorization: Bearer <METERBILL_API_TOKEN>'."


def token_problem(authorization: str | None, expected: str) -> str | None:
    """Why an `Authorization` header does not carry the API token, or None when it does."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return MISSING_TOKEN
    # Constant-time: the time taken must not tell an attacker how much of a guess was right.
    if not hmac.compare_digest(credentials.encode(), expected.encode()):
        return "Invalid API token."
    return None


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """FastAPI dependency: 401 unless the request carries the API token."""
    problem = token_problem(request.headers.get("authorization"), request.app.state.api_token)
    if problem is not None:
        raise StarletteHTTPException(401, problem, headers={"WWW-Authenticate": "Bearer"})


class TokenFirst:
    """Answers 401 to a request for a protected route without the token, unread.

    A route is protected when it is one of `routes` (matched as the router would, path and
    method; a wrong method on a protected path too), so an unknown path still gets its 404
    and public routes added later (the Stripe webhook) need no list kept here.
    """

    def __init__(self, app: ASGIApp, *, token: str, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.token = token
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._protected(scope):
            problem = token_problem(Headers(scope=scope).get("authorization"), self.token)
            if problem is not None:
                # Neither `receive` nor the body is touched: the answer goes out at once.
                await unauthorized_response(problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _protected(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] is not Match.NONE for route in self.routes)
