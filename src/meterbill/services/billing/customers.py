"""Tenant <-> Stripe customer: created once, however many requests race.

Order: the local mapping, then Stripe's search on `metadata['tenant_id']` (finds a customer a
lost local write left behind), then a create whose idempotency key is `customer:{tenant_id}`.
Racing requests that all miss the mapping send the same key, so Stripe makes one customer and
replays it to the rest; the tenant row is written with insert-or-ignore on the unique
`tenant_id`, so they also share one row. Nothing is written locally before Stripe succeeds.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ...adapters.db.repositories import TenantRepository
from ...adapters.db.session import Database
from ...domain.errors import InvalidInput
from ...ports.stripe import StripePort
from ..views import TenantView
from .tenants import tenant_view

TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def validate_tenant_id(tenant_id: str) -> str:
    if not isinstance(tenant_id, str) or not TENANT_ID.match(tenant_id):
        raise InvalidInput(
            "tenant_id must be 1-128 characters: letters, digits and _ . : @ - "
            "(starting with a letter or digit)", field="tenant_id")
    return tenant_id


class CustomerService:
    def __init__(self, db: Database, gateway: StripePort,
                 test_clock_for: Callable[[str], str] | None = None) -> None:
        self.db = db
        self.gateway = gateway
        # Sandbox mode: the tenant's test clock, which its new customer is put on.
        self.test_clock_for = test_clock_for

    def ensure_customer(self, tenant_id: str, email: str, name: str | None) -> TenantView:
        validate_tenant_id(tenant_id)
        email = (email or "").strip()
        if len(email) > 320 or not _EMAIL.match(email):
            raise InvalidInput(f"email is not a valid address: {email!r}", field="email")
        name = name.strip() or None if name else None
        if name is not None and len(name) > 256:
            raise InvalidInput("name must be at most 256 characters", field="name")

        with self.db.session() as session:
            row = TenantRepository(session).get(tenant_id)
            if row is not None and row.stripe_customer_id:
                return tenant_view(row)

        customer = self.gateway.search_customer_by_tenant(tenant_id)
        if customer is None:
            customer = self.gateway.create_customer(
                tenant_id=tenant_id, email=email, name=name,
                idempotency_key=f"customer:{tenant_id}",
                test_clock=self.test_clock_for(tenant_id) if self.test_clock_for else None,
            )

        with self.db.session() as session:
            repo = TenantRepository(session)
            repo.claim_customer(tenant_id, email, name, customer.id)
            row = repo.get(tenant_id)
            assert row is not None
            return tenant_view(row)
