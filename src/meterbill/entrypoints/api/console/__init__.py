"""The admin console at `/admin`: server-rendered pages behind a login (see `auth.py`).

One router per page; `install(app)` adds them, the static files and the login redirect. Pages
are Jinja2 templates in `meterbill/templates/console/`, built from small partials so that a
section (SLO tiles, drifts, a held invoice, the sandbox clock) is one partial and one line
in a page.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from meterbill.bootstrap import Container

from . import (
    invoices,
    login,
    notifications,
    operations,
    overview,
    sandbox,
    tenants,
    webhooks,
)
from .auth import ConsoleAuth, parse_admin_users
from .common import LoginRequired, login_redirect

ROUTERS = (login.router, overview.router, tenants.router, invoices.router, webhooks.router,
           operations.router, notifications.router, sandbox.router)


def install(app: FastAPI, container: Container, token: str) -> None:
    settings = container.settings
    users = settings.console_admin_users
    app.state.console_auth = ConsoleAuth(
        token=token, users=parse_admin_users(users.get_secret_value() if users else ""),
        secure_cookies=settings.environment != "development")
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(packages=[("meterbill", "static")]), name="static")

    # Browsers ask for /favicon.ico on any page they show, error pages and JSON included;
    # "no content" keeps their consoles free of a 404 for it.
    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, error: LoginRequired) -> Response:
        return login_redirect(error.next_path)
