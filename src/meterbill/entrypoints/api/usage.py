"""Usage in and out: `POST /usage/events` (ingestion) and `GET /tenants/{id}/usage` (the view).

`POST /usage/events` answers:
- 200 `{accepted, duplicates, stored, rejected, errors}` when at least one event was accepted
  (or the batch was empty): the good events are stored, `errors` lists each problem of the
  others by `index` (in the batch, from 0) and `field`. A repeated `event_id` is accepted and
  counted in `duplicates`; it is stored once.
- 422 `invalid_events` when every event was rejected: the same counts and `errors` inside the
  error envelope; 422 `invalid_request` when the body is not `{"events": [...]}`.
- 413 `batch_too_large` above 10,000 events, 413 `payload_too_large` above the body limit
  (MAX_BODY_BYTES, 8 MiB, room for 10,000 events with long ids); 400 `invalid_json`.
A body whose events all have the plain shape is decoded and checked at once by a compiled
validator (`services.usage.fast_batch`); any other body is decoded with `json` and checked here,
and each event off the plain shape goes to the domain's parser, so the rules and messages are
those of file ingestion either way. The batch's tenants are looked up in one query rather than
one per tenant. Figures: docs/benchmarks.md, "Usage ingestion fast path".
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from meterbill.bootstrap import Container
from meterbill.domain.usage import MAX_BATCH, METRICS, BatchTooLarge
from meterbill.services.usage.ingest import IngestResult
from meterbill.services.usage.view import UsageViewService

from .deps import ContainerDep
from .errors import error_body
from .schemas import EXAMPLE_MONTH, EXAMPLE_NOW, TenantIdPath

router = APIRouter()

MAX_BODY_BYTES = 8 * 1024 * 1024
_EVENTS_EXAMPLE = {"events": [
    {"event_id": "evt_000001", "tenant_id": "test_tenant_001", "metric": "queries",
     "quantity": 1, "timestamp": EXAMPLE_NOW}]}


class _BadBatch(Exception):
    """The body is not a usable batch: answered with `status` and the error envelope."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.response = JSONResponse(error_body(code, message, field, **extra), status)


def usage_view_service(container: Container) -> UsageViewService:
    """The view over the container's database, usage store and catalog."""
    return UsageViewService(container.db, container.usage_store, container.catalog,
                            clock=container.stripe_time)  # the period on Stripe's clock


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The raw body, or None once it is known to exceed `limit` bytes (read no further)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _events_of(body: bytes) -> list[Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        where = f" at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise _BadBatch(400, "invalid_json",
                        f"The request body is not valid JSON: {reason}{where}.") from None
    if not isinstance(data, dict):
        raise _BadBatch(422, "invalid_request", "The request body must be a JSON object: "
                        '{"events": [{"event_id", "tenant_id", "timestamp", ...}]}.')
    extra = sorted(key for key in data if key != "events")
    if extra:
        raise _BadBatch(422, "invalid_request", f"{extra[0]} is not a known field; the body "
                        'holds only "events".', extra[0])
    if "events" not in data:
        raise _BadBatch(422, "invalid_request", "events is required: a list of event objects.",
                        "events")
    events = data["events"]
    if not isinstance(events, list):
        raise _BadBatch(422, "invalid_request", "events must be a list of event objects (got "
                        f"{type(events).__name__}).", "events")
    if len(events) > MAX_BATCH:
        raise BatchTooLarge(len(events))  # 413, answered by the API's error mapping
    return events


def _ingest(container: Container, body: bytes) -> JSONResponse:
    fast = container.usage_ingest.ingest_json(body)
    if fast is not None:
        return _answer(*fast)
    try:
        events = _events_of(body)
    except _BadBatch as bad:
        return bad.response
    return _answer(container.usage_ingest.ingest(events), len(events))


def _answer(result: IngestResult, size: int) -> JSONResponse:
    data = {"accepted": result.accepted, "duplicates": result.duplicates,
            "stored": result.stored, "rejected": result.rejected,
            "errors": [error.to_dict() for error in result.errors]}
    if size and result.rejected == size:
        first = result.errors[0] if result.errors else None
        what = "The event was" if size == 1 else f"All {size:,} events were"
        message = (f"{what} rejected and nothing was stored; each problem is listed in errors "
                   "by index and field.")
        return JSONResponse(error_body("invalid_events", message,
                                       first.field if first else None, **data), 422)
    return JSONResponse(data, 200)


@router.post(
    "/usage/events",
    tags=["usage"],
    summary="Ingest usage events (up to 10,000 per request)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "example": _EVENTS_EXAMPLE}}}},
    responses={200: {"description": "Counts; errors by index and field for rejected events"},
               413: {"description": "More than 10,000 events, or the body is too large"},
               422: {"description": "Every event rejected, or the body is not {events: [...]}"}},
)
async def ingest_events(request: Request, container: ContainerDep) -> JSONResponse:
    limit: int = getattr(request.app.state, "usage_max_body_bytes", MAX_BODY_BYTES)
    body = await _read_limited(request, limit)
    if body is None:
        return JSONResponse(error_body(
            "payload_too_large", f"Usage request bodies are limited to {limit:,} bytes; send "
            "fewer events per request."), 413)
    # Parsing, checks and the store insert are CPU and blocking I/O: off the event loop.
    return await run_in_threadpool(_ingest, container, body)


@router.get(
    "/tenants/{tenant_id}/usage",
    tags=["tenants", "usage"],
    summary="A tenant's usage in a period: used, included, overage, projection, daily series",
)
def tenant_usage(
    tenant_id: TenantIdPath,
    container: ContainerDep,
    period: Annotated[str, Query(
        description="current (the subscription's current period) or a calendar month in "
                    "UTC as YYYY-MM", max_length=16,
        examples=["current", EXAMPLE_MONTH])] = "current",
    metric: Annotated[str, Query(description=f"One of {', '.join(METRICS)}.",
                                 max_length=16)] = "queries",
) -> dict[str, Any]:
    return usage_view_service(container).view(tenant_id, period, metric).to_dict()
