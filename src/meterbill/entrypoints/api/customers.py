"""`POST /customers`: the tenant's Stripe customer, created once however often it is asked for."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from .deps import ContainerDep
from .schemas import CustomerCreate

router = APIRouter(tags=["customers"])

_EXAMPLES: dict[str, Any] = {"seeds": {
    "summary": "A tenant's customer (the seeds' example)",
    "value": {"tenant_id": "test_tenant_001", "email": "admin@testcompany.com",
              "name": "Test Company"}}}


@router.post(
    "/customers",
    summary="Create (or find) the tenant's Stripe customer",
    description=(
        "Looks up the local mapping first, then Stripe (by `metadata['tenant_id']`), and only "
        "then creates the customer with an idempotency key derived from the tenant id, so "
        "repeated and concurrent calls return the same customer."
    ),
)
def create_customer(body: Annotated[CustomerCreate, Body(openapi_examples=_EXAMPLES)],
                    container: ContainerDep) -> dict[str, Any]:
    tenant = container.customers.ensure_customer(body.tenant_id, body.email, body.name)
    # `customer_id` is the key the seeds' clients read; the rest is the tenant as stored.
    return {"customer_id": tenant.stripe_customer_id, **tenant.to_dict()}
