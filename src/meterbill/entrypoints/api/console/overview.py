"""`/admin`: the overview."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from meterbill.domain.tenant_states import STATES
from meterbill.services.console.overview import OverviewService

from ..deps import ContainerDep
from .common import SessionDep
from .render import page

router = APIRouter(prefix="/admin")


@router.get("", include_in_schema=False)
def overview(request: Request, container: ContainerDep, session: SessionDep) -> Response:
    data = OverviewService(container.db, container.catalog).overview()
    return page(request, "console/overview.html", overview=data, states=STATES,
                inbox=container.webhook_components().admin.counts(),
                slos=container.slo_status.status())
