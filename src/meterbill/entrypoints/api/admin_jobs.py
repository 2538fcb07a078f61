"""Operator routes on the schedule table (`/admin/jobs`), for `meterbill jobs` beside a
running server and the admin console: the server runs a job where it holds the usage store
and the sandbox.

- `GET /admin/jobs`: every job, its schedule and its newest run.
- `POST /admin/jobs/{name}/run`: run one now (recorded like a scheduled run); its run.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from .deps import ContainerDep

router = APIRouter(prefix="/admin/jobs", tags=["admin"])


@router.get("", summary="Periodic jobs and their newest runs")
def list_jobs(container: ContainerDep) -> dict[str, Any]:
    return {"data": [status.to_dict() for status in container.jobs.status()]}


@router.post("/{name}/run", summary="Run a periodic job now")
async def run_job(name: Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9-]+$",
                                            description="A job of GET /admin/jobs.")],
                  container: ContainerDep) -> dict[str, Any]:
    runner = container.jobs
    runner.job(name)  # 404 before anything runs
    return (await run_in_threadpool(runner.run, name)).to_dict()
