"""`/admin/notifications`: the outbox, and each email as its recipient sees it."""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from meterbill.adapters.db.notifications import STATUSES
from meterbill.domain.errors import MeterbillError

from ..deps import ContainerDep
from ..schemas import RowIdPath
from .common import SessionDep
from .render import page

router = APIRouter(prefix="/admin/notifications")

# The email's own HTML, shown in a sandboxed frame of the console: no script, nothing fetched.
PREVIEW_CSP = ("sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
               "frame-ancestors 'self'")


@router.get("", include_in_schema=False)
def outbox(request: Request, container: ContainerDep, session: SessionDep,
           status: Annotated[str, Query(max_length=16)] = "",
           tenant: Annotated[str, Query(max_length=128)] = "") -> Response:
    service = container.notifications
    chosen = status if status in STATUSES else None
    rows = service.list(status=chosen, tenant_id=tenant.strip() or None, limit=200)
    return page(request, "console/notifications.html", rows=rows, counts=service.counts(),
                statuses=STATUSES, status=chosen or "", tenant=tenant,
                delivery=service.delivery)


@router.get("/{notice_id}", include_in_schema=False)
def notice(request: Request, notice_id: RowIdPath, container: ContainerDep,
           session: SessionDep) -> Response:
    try:
        row = container.notifications.get(notice_id)
    except MeterbillError as problem:
        if problem.status != 404:
            raise
        return page(request, "console/not_found.html", 404, what=f"notification {notice_id}")
    return page(request, "console/notification.html", row=row)


@router.get("/{notice_id}/preview", include_in_schema=False)
def preview(notice_id: RowIdPath, container: ContainerDep, session: SessionDep) -> Response:
    row = container.notifications.get(notice_id)
    body = row.body_html or f"<pre>{html.escape(row.body_text or row.detail)}</pre>"
    return HTMLResponse(body, headers={"Content-Security-Policy": PREVIEW_CSP,
                                       "Cache-Control": "no-store",
                                       "X-Content-Type-Options": "nosniff"})
