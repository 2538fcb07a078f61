"""`GET /billing/portal/{tenant_id}?expires=..&sig=..`: the "update your card" link of emails.

Public (the customer has no API token): the signature is the authentication. A good link
redirects (303) to a fresh Stripe billing-portal session; a changed or expired one gets a short
page saying what to do (403), as does a tenant that no longer exists (404) or Stripe being
unavailable (502/503, try again). The answers are pages, not JSON: people open them.
"""

from __future__ import annotations

import html
import logging

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from meterbill.domain.errors import MeterbillError

from .deps import ContainerDep
from .schemas import TenantIdPath

log = logging.getLogger("meterbill.api")

router = APIRouter(prefix="/billing/portal", tags=["billing portal"])


def page(title: str, message: str, status: int) -> HTMLResponse:
    body = (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title></head>"
        "<body style=\"font-family: sans-serif; max-width: 520px; margin: 64px auto; "
        "line-height: 1.5;\">"
        f"<h1 style=\"font-size: 22px;\">{html.escape(title)}</h1>"
        f"<p>{html.escape(message)}</p></body></html>"
    )
    # Never cached, never indexed: the page is about one customer's link.
    return HTMLResponse(body, status_code=status,
                        headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"})


@router.get("/return", summary="Where the billing portal sends the customer back",
            response_class=HTMLResponse)
def portal_return() -> HTMLResponse:
    return page("Thank you", "Your billing details are saved. You can close this window.", 200)


@router.get(
    "/{tenant_id}",
    summary="Open the Stripe billing portal from an email's signed link",
    response_class=RedirectResponse,
    status_code=303,
    responses={303: {"description": "To the Stripe billing portal"},
               403: {"description": "Link changed or expired"},
               404: {"description": "Unknown tenant"}},
)
async def open_portal(tenant_id: TenantIdPath, container: ContainerDep,
                      expires: str | None = Query(None, max_length=32),
                      sig: str | None = Query(None, max_length=128),
                      ) -> Response:
    try:
        url = await run_in_threadpool(container.portal.open, tenant_id, expires, sig)
    except MeterbillError as error:
        if error.status >= 500:
            log.error("billing portal for %s: %s", tenant_id, error)
            return page("Please try again", "We could not open the billing portal just now. "
                        "Please try the link again in a few minutes.", error.status)
        log.warning("billing portal link for %s refused: %s", tenant_id, error.code)
        title = "Link expired" if error.code == "link_expired" else "Link not valid"
        return page(title if error.status == 403 else "Not found", error.message,
                    error.status)
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
