"""Tenants for the console: a searchable, paged list, and one tenant with everything about it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...adapters.db.console import ConsoleQueries
from ...adapters.db.repositories import TenantRepository
from ...adapters.db.session import Database
from ...domain.errors import InvalidInput, MeterbillError
from ...domain.tenant_states import parse_state, tenant_state
from ...ports.webhooks import InvoiceRecord
from ..access.dunning import DunningService, TimelineView
from ..billing.invoices import InvoiceService
from ..billing.tenants import TenantService, unknown_tenant
from ..notifications.outbox import NoticeView, NotificationService
from ..usage.view import TenantUsage, UsageViewService
from ..views import BillingSummary
from ..webhooks.admin import InboxRow, inbox_row

PAGE_SIZE = 25


@dataclass(frozen=True)
class TenantRow:
    tenant_id: str
    name: str | None
    email: str | None
    plan: str | None
    state: str


@dataclass(frozen=True)
class TenantList:
    rows: list[TenantRow]
    total: int
    page: int
    pages: int


@dataclass(frozen=True)
class TenantDetail:
    summary: BillingSummary
    state: str
    usage: TenantUsage | None
    invoices: list[InvoiceRecord]  # newest first
    invoices_problem: str | None  # why Stripe's invoices are missing, when they are
    timeline: list[TimelineView]
    notices: list[NoticeView]
    events: list[InboxRow]


class TenantDirectory:
    def __init__(self, db: Database, tenants: TenantService, invoices: InvoiceService,
                 usage: UsageViewService, timeline: DunningService,
                 notices: NotificationService) -> None:
        self.db = db
        self.tenants = tenants
        self.invoices = invoices
        self.usage = usage
        self.timeline = timeline
        self.notices = notices

    def search(self, *, text: str | None, state: str | None, plan: str | None,
               page: int) -> TenantList:
        try:
            chosen = parse_state(state)
        except ValueError as error:
            raise InvalidInput(str(error), field="state") from None
        page = max(1, page)
        with self.db.session() as session:
            found = ConsoleQueries(session).search_tenants(
                text=(text or "").strip() or None, state=chosen, plan=plan or None,
                offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
            rows = [TenantRow(t.tenant_id, t.name, t.email, t.current_plan,
                              tenant_state(t.billing_status, bool(t.soft_suspended)))
                    for t in found.rows]
        return TenantList(rows, found.total, page, max(1, math.ceil(found.total / PAGE_SIZE)))

    def detail(self, tenant_id: str) -> TenantDetail:
        summary = self.tenants.get(tenant_id)  # NotFound for an unknown tenant
        with self.db.session() as session:
            row = TenantRepository(session).get(tenant_id)
            if row is None:
                raise unknown_tenant(tenant_id)
            state = tenant_state(summary.status, bool(row.soft_suspended))
            events = ([inbox_row(e) for e in ConsoleQueries(session).events_for_customer(
                row.stripe_customer_id)] if row.stripe_customer_id else [])
        usage: TenantUsage | None = self.usage.view(tenant_id) if summary.plan else None
        invoices: list[InvoiceRecord] = []
        problem = None
        try:
            invoices = list(self.invoices.for_tenant(tenant_id))
        except MeterbillError as error:  # Stripe unreachable: show the rest, say what is missing
            problem = error.message
        timeline = self.timeline.timeline(tenant_id, 50)
        notices = self.notices.list(tenant_id=tenant_id, limit=50)
        return TenantDetail(summary, state, usage, invoices, problem, list(timeline),
                            list(notices), events)
