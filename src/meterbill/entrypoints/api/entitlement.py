"""Access for the SaaS and dunning for operators.

- `GET /tenants/{id}/entitlement`: what the tenant may use now (`access` full | reduced | none,
  `rate_limit_multiplier`, `reason`, `plan`, `included`, `used_this_period`), cheap enough to
  ask on every request; with an `ETag`, and 304 when `If-None-Match` names it.
- `GET /tenants/{id}/timeline`: every change of the tenant's dunning state and its cause.
- `POST /dunning/process` `{tenant_id, failure_count, invoice_amount}`: the seeds' manual
  trigger; applies the policy's step for `failure_count` (0 restores), recorded as `manual`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import Field

from .deps import ContainerDep
from .schemas import TenantId, TenantIdPath, _Body

router = APIRouter()


class DunningProcess(_Body):
    tenant_id: TenantId
    failure_count: int = Field(ge=0, le=1000, examples=[2],
                               description="Failed payment attempts; 0 restores the tenant.")
    invoice_amount: int = Field(ge=0, examples=[9900],
                                description="The unpaid amount in cents (9900 = $99.00).")
    currency: str = Field(default="usd", pattern=r"^[a-z]{3}$")
    invoice_id: str | None = Field(
        default=None, max_length=64,
        description="Names the notices' once-only key; without it, manual steps share one.")


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison: `*`, or any listed tag equal to ours (W/ ignored)."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return any(t == "*" or t.removeprefix("W/") == etag for t in tags)


@router.get(
    "/tenants/{tenant_id}/entitlement",
    tags=["entitlement"],
    summary="What the tenant may use now",
    description="From meterbill's database (and the period's usage total, cached briefly). "
                "Send the `ETag` back in `If-None-Match` to get a 304 while nothing changed.",
    responses={304: {"description": "Unchanged since the ETag you sent"}},
)
def get_entitlement(
    tenant_id: TenantIdPath, container: ContainerDep, response: Response,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Any:
    entitlement = container.entitlement.get(tenant_id)
    etag = entitlement.etag
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return entitlement.to_dict()


@router.get("/tenants/{tenant_id}/timeline", tags=["dunning"],
            summary="The tenant's dunning timeline, oldest first")
def get_timeline(
    tenant_id: TenantIdPath, container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="The newest N entries.")] = 100,
) -> dict[str, Any]:
    entries = [entry.to_dict() for entry in container.dunning.timeline(tenant_id, limit)]
    return {"tenant_id": tenant_id, "data": entries, "count": len(entries)}


@router.post("/dunning/process", tags=["dunning"],
             summary="Apply the dunning step for a failure count (operators)")
def process_dunning(body: DunningProcess, container: ContainerDep) -> dict[str, Any]:
    result = container.dunning.process_manual(
        body.tenant_id, body.failure_count, body.invoice_amount, body.currency,
        body.invoice_id)
    return result.to_dict()
