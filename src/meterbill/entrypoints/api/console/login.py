"""`/admin/login` and `/admin/logout`."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from .auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_SECONDS, csrf_ok
from .common import FormDep, console_auth
from .render import page

router = APIRouter(prefix="/admin")


def _safe_next(value: str | None) -> str:
    # Only a path of this console: never an open redirect to another site.
    if value and value.startswith("/admin") and not value.startswith("//"):
        return value
    return "/admin"


def _form(request: Request, *, error: str | None = None, status: int = 200,
          next_path: str | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    response = page(request, "console/login.html", status, error=error, login_csrf=token,
                    next_path=_safe_next(next_path or request.query_params.get("next")))
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=900, httponly=True,
                        samesite="strict", secure=console_auth(request).secure_cookies,
                        path="/admin")
    return response


@router.get("/login", include_in_schema=False)
def login_page(request: Request) -> Response:
    return _form(request)


@router.post("/login", include_in_schema=False)
def login(request: Request, user: Annotated[str, Form(max_length=128)] = "",
          secret: Annotated[str, Form(max_length=512)] = "",
          csrf_token: Annotated[str, Form(max_length=128)] = "",
          next: Annotated[str, Form(max_length=512)] = "/admin") -> Response:
    auth = console_auth(request)
    client = request.client.host if request.client else "unknown"
    if not csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return _form(request, error="The login form expired. Please try again.", status=403,
                     next_path=next)
    wait = auth.retry_after(client)
    if wait is not None:
        response = _form(request, status=429, next_path=next,
                         error=f"Too many failed logins. Try again in {wait} seconds.")
        response.headers["Retry-After"] = str(wait)
        return response
    name = auth.authenticate(client, user, secret)
    if name is None:
        return _form(request, status=401, next_path=next,
                     error="That did not match. Use the API token (leave the user empty) or "
                           "a user and password from CONSOLE_ADMIN_USERS.")
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, auth.start(name), max_age=SESSION_SECONDS,
                        httponly=True, samesite="strict", secure=auth.secure_cookies,
                        path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/admin")
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, form: FormDep) -> Response:
    console_auth(request).end(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
