"""What every console page shares: the logged-in session, the CSRF check of every POST, and
the redirect after an action (POST, then GET: a reload never repeats an action)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException

from meterbill.bootstrap import Container
from meterbill.services.console.tenants import TenantDirectory

from ..usage import usage_view_service
from .auth import SESSION_COOKIE, ConsoleAuth, Session, csrf_ok


class LoginRequired(Exception):
    """A console page asked for without a session: answered with a redirect to the login."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


def console_auth(request: Request) -> ConsoleAuth:
    auth: ConsoleAuth = request.app.state.console_auth
    return auth


def current_session(request: Request) -> Session:
    found = console_auth(request).session(request.cookies.get(SESSION_COOKIE))
    if found is None:
        raise LoginRequired(request.url.path)
    request.state.console_session = found
    return found


async def checked_form(request: Request,
                       session: Annotated[Session, Depends(current_session)]) -> dict[str, str]:
    """The POSTed form, once its CSRF token is the session's (403 otherwise)."""
    form = await request.form()
    if not csrf_ok(session.csrf, str(form.get("csrf_token") or "")):
        raise HTTPException(403, "The form's security token is missing or out of date. "
                                 "Reload the page and try again.")
    return {key: str(value) for key, value in form.items()}


SessionDep = Annotated[Session, Depends(current_session)]
FormDep = Annotated[dict[str, str], Depends(checked_form)]


def back_to(path: str, **message: str) -> RedirectResponse:
    query = urlencode({k: v for k, v in message.items() if v})
    return RedirectResponse(path + (f"?{query}" if query else ""), status_code=303)


def login_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse(f"/admin/login?next={quote(next_path, safe='/')}", status_code=303)


def directory(container: Container) -> TenantDirectory:
    return TenantDirectory(container.db, container.tenants, container.invoices,
                           usage_view_service(container), container.dunning,
                           container.notifications)
