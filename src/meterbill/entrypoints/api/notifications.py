"""The notification outbox, for a console: what was sent, what is held, what failed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from meterbill.adapters.db.notifications import STATUSES

from .deps import ContainerDep
from .schemas import RowIdPath

router = APIRouter(prefix="/notifications", tags=["notifications"])

StatusQuery = Annotated[str | None, Query(
    description=f"Only this status: {', '.join(STATUSES)}.", pattern="^(" +
    "|".join(STATUSES) + ")$")]


@router.get("", summary="List notifications (newest first)")
def list_notifications(
    container: ContainerDep,
    status: StatusQuery = None,
    tenant_id: Annotated[str | None, Query(max_length=128)] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    service = container.notifications
    rows = service.list(status=status, tenant_id=tenant_id, kind=kind, limit=limit)
    return {"data": [row.as_dict() for row in rows], "count": len(rows),
            "counts": service.counts(), "delivery": service.delivery}


@router.get("/{notification_id}", summary="One notification with its text and HTML bodies")
def get_notification(notification_id: RowIdPath, container: ContainerDep) -> dict[str, Any]:
    return container.notifications.get(notification_id).as_dict()
