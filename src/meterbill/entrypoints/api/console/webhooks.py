"""`/admin/webhooks`: the inbox, one event with its payload and error, replay."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from meterbill.adapters.db.inbox import STATUSES
from meterbill.domain.errors import MeterbillError

from ..deps import ContainerDep
from .common import FormDep, SessionDep, back_to
from .render import page

router = APIRouter(prefix="/admin/webhooks")


@router.get("", include_in_schema=False)
def inbox(request: Request, container: ContainerDep, session: SessionDep,
          type: Annotated[str, Query(max_length=128)] = "",
          status: Annotated[str, Query(max_length=16)] = "") -> Response:
    admin = container.webhook_components().admin
    chosen = status if status in STATUSES else None
    rows = admin.list(status=chosen, type=type.strip() or None, limit=200)
    return page(request, "console/webhooks.html", rows=rows, counts=admin.counts(),
                statuses=STATUSES, type=type, status=chosen or "",
                done=request.query_params.get("done"), failed=request.query_params.get("failed"))


@router.get("/{key}", include_in_schema=False)
def event(request: Request, key: Annotated[str, Path(max_length=255)],
          container: ContainerDep, session: SessionDep) -> Response:
    try:
        row, payload, traceback = container.webhook_components().admin.show(key)
    except MeterbillError as problem:
        if problem.status != 404:
            raise
        return page(request, "console/not_found.html", 404, what=f"webhook event {key}")
    try:
        pretty = json.dumps(json.loads(payload), indent=2, sort_keys=True)
    except ValueError:
        pretty = payload
    return page(request, "console/webhook.html", row=row, payload=pretty,
                traceback=traceback, done=request.query_params.get("done"),
                failed=request.query_params.get("failed"))


@router.post("/{key}/replay", include_in_schema=False)
def replay(key: Annotated[str, Path(max_length=255)], container: ContainerDep,
           form: FormDep) -> Response:
    where = f"/admin/webhooks/{key}"
    try:
        row = container.webhook_components().admin.replay(key)
    except MeterbillError as problem:
        return back_to(where, failed=problem.message)
    return back_to(where, done=f"Replayed: the event is {row.status}.")
