"""`/admin/operations`: usage drifts and job runs; the places for subscription drifts and SLO
status (not built yet)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from meterbill.domain.errors import MeterbillError
from meterbill.services.console.operations import usage_drifts

from ..deps import ContainerDep
from .common import FormDep, SessionDep, back_to
from .render import page

router = APIRouter(prefix="/admin/operations")


@router.get("", include_in_schema=False)
def operations(request: Request, container: ContainerDep, session: SessionDep) -> Response:
    jobs = container.jobs
    return page(request, "console/operations.html", jobs=jobs.status(),
                usage_drifts=usage_drifts(container.db),
                runs=jobs.history(limit=50), done=request.query_params.get("done"),
                failed=request.query_params.get("failed"))


@router.post("/jobs/{name}/run", include_in_schema=False)
def run_job(name: str, container: ContainerDep, form: FormDep) -> Response:
    try:
        run = container.jobs.run(name)
    except MeterbillError as problem:
        return back_to("/admin/operations", failed=problem.message)
    return back_to("/admin/operations", done=f"{run.name}: {run.outcome}")
