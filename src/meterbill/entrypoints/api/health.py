"""`GET /health`: liveness for load balancers and people, no token needed.

It checks the database with one query (503 `degraded` with the reason when it fails) and says
which Stripe it talks to; it makes no Stripe call, so frequent probes cost Stripe nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from .deps import ContainerDep

log = logging.getLogger("meterbill.api")

router = APIRouter(tags=["health"])


@router.get("/health", summary="Service health", responses={503: {"description": "Degraded"}})
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
        with container.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure to reach the database degrades the service
        log.warning("health: database unreachable: %s", error)
        body["status"] = "degraded"
        body["database"] = "unreachable"
        # The exception class says what failed without leaking the URL or credentials.
        body["reason"] = f"database unreachable ({type(error).__name__})"
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)
