"""`POST /tenants/{tenant_id}/billing-link`: a signed, expiring link to the customer's page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from meterbill.services.console.billing_page import CustomerBillingService

from .deps import ContainerDep
from .schemas import TenantIdPath
from .usage import usage_view_service

router = APIRouter(tags=["tenants"])


@router.post("/tenants/{tenant_id}/billing-link",
             summary="A signed link to the customer's billing page",
             description="Valid PORTAL_LINK_DAYS days; shows that tenant only. Emails carry "
                         "the portal link; send this one to let the customer see usage and "
                         "invoices.")
def billing_link(tenant_id: TenantIdPath, container: ContainerDep) -> dict[str, Any]:
    service = CustomerBillingService(container.portal_links, container.tenants,
                                     container.invoices, usage_view_service(container))
    return {"tenant_id": tenant_id, "url": service.link(tenant_id),
            "valid_days": container.settings.portal_link_days}
