"""The FastAPI application: `create_app(container)`.

The app holds no state of its own: everything comes from the container it is given, so tests
build one app per container and `meterbill serve` builds exactly one.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, FastAPI

import meterbill
from meterbill.bootstrap import Container
from meterbill.domain.clock import utcnow

from . import (
    admin_jobs,
    admin_sandbox,
    admin_usage,
    billing_links,
    billing_page,
    console,
    customers,
    entitlement,
    health,
    invoices,
    notifications,
    operations,
    portal,
    subscriptions,
    tenants,
    usage,
    usage_reports,
)
from .auth import TokenFirst, announce_kept_token, require_token, resolve_api_token
from .errors import install_error_handlers
from .request_id import RequestId
from .schemas import ERROR_RESPONSES, dated_examples

log = logging.getLogger("meterbill.api")

# Routers that need `Authorization: Bearer $METERBILL_API_TOKEN`. `/health` and
# `/webhooks/stripe` (authenticated by Stripe's signature instead) stay outside.
PROTECTED: tuple[APIRouter, ...] = (customers.router, subscriptions.router, tenants.router,
                                     usage.router, entitlement.router, notifications.router,
                                     usage_reports.router, admin_usage.router,
                                     admin_jobs.router, operations.router, invoices.router,
                                     billing_links.router, admin_sandbox.router)
# The billing-portal and billing-page links of emails are authenticated by their own signature.
PUBLIC: tuple[APIRouter, ...] = (health.router, portal.router, operations.public,
                                 billing_page.router)

DESCRIPTION = """
Billing automation for usage-based SaaS: tenants ↔ Stripe customers, plans, subscriptions.

Every route except `/health`, `/ready`, `/metrics` and `/billing/portal/*` (the signed links
in emails) needs `Authorization: Bearer $METERBILL_API_TOKEN`.
Errors are `{"error": {"code", "message", "field"?}}`.
"""


def create_app(container: Container) -> FastAPI:
    """Build the API around `container`; raises `MissingApiToken` in production without one."""
    settings = container.settings
    token, generated = resolve_api_token(settings)
    if generated:
        announce_kept_token(settings)
    app = FastAPI(
        title="meterbill",
        version=getattr(meterbill, "__version__", "0"),
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.container = container
    app.state.api_token = token
    app.state.api_token_generated = generated
    install_error_handlers(app)
    for router in PUBLIC:
        app.include_router(router)
    first_protected = len(app.router.routes)
    for router in PROTECTED:
        app.include_router(router, dependencies=[Depends(require_token)],
                           responses=ERROR_RESPONSES)
    # The token is checked before any body is read (see auth.TokenFirst).
    app.add_middleware(TokenFirst, token=token, routes=app.router.routes[first_protected:])
    console.install(app, container, token)  # /admin: its own login, not the bearer token
    app.add_middleware(RequestId)  # outermost: every line of the request carries its id
    _serve_dated_openapi(app)
    _announce(container)
    return app


def _serve_dated_openapi(app: FastAPI) -> None:
    """`/openapi.json` with its dated examples filled in (schemas.dated_examples), made again
    on the first request of each UTC day so a long-running server's examples stay valid."""
    made: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        now = utcnow()
        if made.get("day") != now.date():
            app.openapi_schema = None
            made["schema"] = dated_examples(FastAPI.openapi(app), now)
            made["day"] = now.date()
        app.openapi_schema = made["schema"]
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _announce(container: Container) -> None:
    mode = container.settings.mode
    if mode == "sandbox":
        log.warning(
            "SANDBOX MODE: no STRIPE_SECRET_KEY is set, so meterbill talks to the local Stripe "
            "sandbox%s. No real money moves; data in the sandbox is not Stripe's.",
            " (in this process)" if container.sandbox is not None else "",
        )
    else:
        log.info("meterbill API: Stripe %s mode", mode)
