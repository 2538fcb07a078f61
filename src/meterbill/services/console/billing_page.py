"""The customer's billing page behind a signed link: plan, usage against the included amount,
the projected total, invoices, a daily usage statement, and the way to Stripe's portal.

The link is checked before anything is read, and every refusal is the same `LinkRefused`
whether or not the tenant exists: a guessed link learns nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...adapters.db.notifications import new_notice_ids
from ...adapters.db.repositories import TenantRepository
from ...adapters.db.session import Database
from ...domain.clock import Clock, utcnow
from ...domain.errors import Conflict, MeterbillError
from ...ports.notify import Notice, Notifier
from ...ports.webhooks import InvoiceRecord
from ..billing.invoices import InvoiceService
from ..billing.tenants import TenantService, unknown_tenant
from ..errors import LinkRefused
from ..notifications.portal_links import PortalLinks
from ..usage.view import TenantUsage, UsageViewService
from ..views import BillingSummary

PAGE = "billing"


@dataclass(frozen=True)
class CustomerBilling:
    summary: BillingSummary
    usage: TenantUsage | None
    invoices: list[InvoiceRecord]
    invoices_problem: str | None
    portal_url: str  # the signed portal link, expiring with this page's link
    statement_url: str  # this page's link, for the CSV and PDF statements


class BillingLinkSender:
    """Emails a tenant the link to its billing page, through the outbox."""

    def __init__(self, db: Database, notifier: Notifier,
                 after_commit: Callable[[Sequence[int]], None], clock: Clock = utcnow) -> None:
        self.db = db
        self.notifier = notifier
        self.after_commit = after_commit
        self.clock = clock

    def send(self, tenant_id: str) -> str:
        """The address it goes to; `Conflict` for a tenant without an email address."""
        with self.db.session() as session:
            tenant = TenantRepository(session).get(tenant_id)
            if tenant is None:
                raise unknown_tenant(tenant_id)
            if not tenant.email:
                raise Conflict(f"Tenant {tenant_id} has no email address to send the link to.",
                               code="no_email")
            # One email per tenant and minute: a double click sends one.
            minute = self.clock().strftime("%Y%m%dT%H%M")
            self.notifier.enqueue(session, Notice(
                kind="billing_link", dedupe_key=f"billing_link:{tenant_id}:{minute}",
                tenant_id=tenant_id, detail=f"Billing page link sent to {tenant_id}",
                facts={"email": tenant.email, "tenant_name": tenant.name,
                       "plan": tenant.current_plan}))
            recorded = list(new_notice_ids(session))
            address = tenant.email
        if recorded:
            self.after_commit(recorded)
        return address


class CustomerBillingService:
    def __init__(self, links: PortalLinks, tenants: TenantService, invoices: InvoiceService,
                 usage: UsageViewService) -> None:
        self.links = links
        self.tenants = tenants
        self.invoices = invoices
        self.usage = usage

    def link(self, tenant_id: str) -> str:
        """A signed link to the tenant's billing page (NotFound for an unknown tenant)."""
        self.tenants.get(tenant_id)
        return self.links.url_for(tenant_id, PAGE)

    def page(self, tenant_id: str, expires: str | None, sig: str | None) -> CustomerBilling:
        self.links.check(tenant_id, expires, sig, PAGE)
        expiry = int(str(expires))
        summary = self._summary(tenant_id)
        usage = self.usage.view(tenant_id) if summary.plan else None
        invoices: list[InvoiceRecord] = []
        problem = None
        try:
            invoices = [i for i in self.invoices.for_tenant(tenant_id) if i.status != "draft"]
        except MeterbillError:
            problem = "Your invoices cannot be shown just now; please try again in a minute."
        return CustomerBilling(summary, usage, invoices, problem,
                               self.links.url_for(tenant_id, "portal", expires=expiry),
                               self.links.url_for(tenant_id, PAGE, expires=expiry))

    def statement(self, tenant_id: str, expires: str | None, sig: str | None) -> TenantUsage:
        """The current period's usage, day by day (the page's link authorises it)."""
        self.links.check(tenant_id, expires, sig, PAGE)
        self._summary(tenant_id)
        return self.usage.view(tenant_id)

    def _summary(self, tenant_id: str) -> BillingSummary:
        try:
            return self.tenants.get(tenant_id)
        except MeterbillError as error:
            if error.status == 404:  # a link we signed, to a tenant since deleted
                raise LinkRefused("This billing link is not valid any more. Ask us for a "
                                  "new one.") from None
            raise
