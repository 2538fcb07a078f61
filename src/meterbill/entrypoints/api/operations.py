"""Operations: `GET /metrics` (Prometheus), `GET /ready` (readiness), `GET /status` (the SLOs)
and `GET /admin/drifts` (what reconciliation found). `/metrics` and `/ready` are public like
`/health` (probes and scrapers carry no token; they show counts, never ids or secrets)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from meterbill.adapters.metrics import StateCollector, scrape

from .deps import ContainerDep

public = APIRouter(tags=["operations"])
router = APIRouter(tags=["operations"])


@public.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(container: ContainerDep) -> Response:
    body, content_type = await run_in_threadpool(
        scrape, StateCollector(container.slo_status.gauges))
    return Response(body, media_type=content_type)


@public.get("/ready", summary="Readiness",
            responses={503: {"description": "Not ready: `checks` says what failed"}})
async def ready(container: ContainerDep) -> JSONResponse:
    ok, checks = await run_in_threadpool(container.readiness.check)
    return JSONResponse({"status": "ready" if ok else "not_ready", "checks": checks},
                        status_code=200 if ok else 503)


@router.get("/status", summary="SLOs: value, objective, ok or breach, since when")
def status(container: ContainerDep) -> dict[str, Any]:
    data = [s.to_dict() for s in container.slo_status.status()]
    return {"ok": all(s["ok"] for s in data), "data": data}


@router.get("/admin/drifts", summary="Reconciliation drifts, newest first")
def drifts(container: ContainerDep,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
           offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> dict[str, Any]:
    return {"data": [d.to_dict() for d in
                     container.subscription_reconcile.drifts(limit, offset)]}
