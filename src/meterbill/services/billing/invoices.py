"""A tenant's invoices as Stripe has them, and paying the open one again on request."""

from __future__ import annotations

from ...adapters.db.repositories import TenantRepository
from ...adapters.db.session import Database
from ...domain.errors import Conflict
from ...ports.invoices import InvoicesPort
from ...ports.webhooks import InvoiceRecord
from .tenants import unknown_tenant


class InvoiceService:
    def __init__(self, db: Database, invoices: InvoicesPort) -> None:
        self.db = db
        self.invoices = invoices

    def for_tenant(self, tenant_id: str, limit: int = 24) -> list[InvoiceRecord]:
        """Newest first; none for a tenant without a Stripe customer."""
        customer_id = self._customer(tenant_id)
        if customer_id is None:
            return []
        return self.invoices.list_for_customer(customer_id, limit=limit)

    def retry_open(self, tenant_id: str) -> InvoiceRecord:
        """Attempt payment of the tenant's newest open invoice now (Conflict when none)."""
        open_ = [i for i in self.for_tenant(tenant_id) if i.status == "open"]
        if not open_:
            raise Conflict(f"Tenant {tenant_id} has no open invoice to retry.",
                           code="no_open_invoice")
        invoice = open_[0]
        # One key per attempt Stripe has counted: a double click is one payment attempt, a
        # retry after Stripe recorded the last attempt is a new one.
        return self.invoices.pay(
            invoice.id, idempotency_key=f"invoice-retry:{invoice.id}:{invoice.attempt_count}")

    def _customer(self, tenant_id: str) -> str | None:
        with self.db.session() as session:
            tenant = TenantRepository(session).get(tenant_id)
            if tenant is None:
                raise unknown_tenant(tenant_id)
            return tenant.stripe_customer_id
