"""Tenants as meterbill sees them: the billing summary of one, and the list of all."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .deps import ContainerDep
from .schemas import TenantIdPath

router = APIRouter(prefix="/tenants", tags=["tenants"])


@router.get("", summary="List tenants")
def list_tenants(container: ContainerDep) -> dict[str, Any]:
    tenants = container.tenants.list()
    return {"data": [tenant.to_dict() for tenant in tenants], "count": len(tenants)}


@router.get(
    "/{tenant_id}",
    summary="A tenant's billing summary",
    description="Plan, status, period, trial end, payment method on file and API access.",
)
def get_tenant(tenant_id: TenantIdPath, container: ContainerDep) -> dict[str, Any]:
    return container.tenants.get(tenant_id).to_dict()
