"""`/admin/operations`: SLO status, the drifts reconciliation recorded (subscriptions and
usage), "reconcile now" (or a dry run of it), the periodic jobs and their runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from meterbill.bootstrap import Container
from meterbill.domain.errors import MeterbillError
from meterbill.services.console.operations import subscription_drifts, usage_drifts

from ..deps import ContainerDep
from .common import FormDep, SessionDep, back_to
from .render import page

router = APIRouter(prefix="/admin/operations")

RECONCILE_JOB = "subscription-reconcile"


def _page(request: Request, container: Container, drift_page: int = 1,
          **extra: Any) -> Response:
    jobs = container.jobs
    return page(request, "console/operations.html", jobs=jobs.status(),
                slos=container.slo_status.status(),
                drifts=subscription_drifts(container.subscription_reconcile, drift_page),
                usage_drifts=usage_drifts(container.db), runs=jobs.history(limit=50),
                done=request.query_params.get("done"),
                failed=request.query_params.get("failed"), **extra)


@router.get("", include_in_schema=False)
def operations(request: Request, container: ContainerDep, session: SessionDep,
               drift_page: Annotated[int, Query(alias="drifts", ge=1, le=100_000)] = 1,
               ) -> Response:
    return _page(request, container, drift_page)


@router.post("/reconcile", include_in_schema=False)
def reconcile(request: Request, container: ContainerDep, form: FormDep) -> Response:
    if form.get("dry_run"):
        # Nothing changes or is recorded: the report is shown on the page, not redirected.
        try:
            report = container.subscription_reconcile.run(dry_run=True)
        except MeterbillError as problem:
            return back_to("/admin/operations", failed=f"Dry run: {problem.message}")
        return _page(request, container, dry_run=report)
    if RECONCILE_JOB in container.jobs.jobs:  # through the runner, so the run is recorded
        run = container.jobs.run(RECONCILE_JOB)
        if run.outcome != "ok":
            return back_to("/admin/operations",
                           failed=f"{RECONCILE_JOB}: {run.outcome} {run.error or ''}".strip())
        counts = run.counts
    else:  # the daily job is switched off (RECONCILE_DAILY_AT empty): run it directly
        try:
            counts = container.subscription_reconcile.run().as_counts()
        except MeterbillError as problem:
            return back_to("/admin/operations", failed=problem.message)
    return back_to("/admin/operations", done=(
        f"Reconciled {counts.get('subscriptions', 0)} subscription(s): "
        f"{counts.get('drifts', 0)} drift(s) found, {counts.get('fixed', 0)} fixed."))


@router.post("/jobs/{name}/run", include_in_schema=False)
def run_job(name: str, container: ContainerDep, form: FormDep) -> Response:
    try:
        run = container.jobs.run(name)
    except MeterbillError as problem:
        return back_to("/admin/operations", failed=problem.message)
    return back_to("/admin/operations", done=f"{run.name}: {run.outcome}")
