"""`GET /health`: liveness for load balancers and people, no token needed.

It reads the database's schema revision (one query, which also proves the database answers)
and compares it with the code's head, read once per process. 503 `degraded` with a `reason`
when the database cannot be reached or its schema is behind (requests would fail on missing
tables). It says which Stripe it talks to but makes no Stripe call, so frequent probes cost
Stripe nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from .deps import ContainerDep

log = logging.getLogger("meterbill.api")

router = APIRouter(tags=["health"])

_EXAMPLE = {"status": "ok", "stripe_configured": True, "mode": "sandbox", "database": "ok",
            "schema": {"current": "0006", "head": "0006", "state": "current"}}


@router.get(
    "/health", summary="Service health",
    responses={200: {"content": {"application/json": {"example": _EXAMPLE}}},
               503: {"description": "Degraded: the database is unreachable or its schema is "
                                    "behind (`reason` says which and what to do)"}},
)
def health(container: ContainerDep) -> JSONResponse:
    settings = container.settings
    body: dict[str, Any] = {
        "status": "ok",
        # In sandbox mode the (local) Stripe sandbox is the configured Stripe.
        "stripe_configured": settings.mode == "sandbox" or settings.stripe_secret_key is not None,
        "mode": settings.mode,
        "database": "ok",
    }
    try:
        status = container.schema_status()
    except Exception as error:  # any failure to reach the database degrades the service
        log.warning("health: database unreachable: %s", error)
        body["status"] = "degraded"
        body["database"] = "unreachable"
        # The exception class says what failed without leaking the URL or credentials.
        body["reason"] = f"database unreachable ({type(error).__name__})"
        return JSONResponse(body, status_code=503)
    body["schema"] = status.to_dict()
    if status.behind:
        body["status"] = "degraded"
        body["database"] = "schema_behind"
        body["reason"] = f"{status.describe()}: run `meterbill db upgrade`"
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)
