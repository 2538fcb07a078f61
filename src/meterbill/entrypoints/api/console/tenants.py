"""`/admin/tenants`: the list and one tenant's page, with its actions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, NoReturn

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from meterbill.domain.errors import Conflict, MeterbillError
from meterbill.domain.tenant_states import STATES
from meterbill.services.console.billing_page import BillingLinkSender, CustomerBillingService

from ..deps import ContainerDep
from ..schemas import TenantIdPath
from ..usage import usage_view_service
from .common import FormDep, SessionDep, back_to, directory
from .render import page

router = APIRouter(prefix="/admin/tenants")

CATCH_UP_DAYS = 30  # Stripe keeps 30 days of events


@router.get("", include_in_schema=False)
def tenant_list(request: Request, container: ContainerDep, session: SessionDep,
                q: Annotated[str, Query(max_length=128)] = "",
                state: Annotated[str, Query(max_length=32)] = "",
                plan: Annotated[str, Query(max_length=40)] = "",
                page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
                ) -> Response:
    error = None
    try:
        found = directory(container).search(text=q, state=state, plan=plan, page=page_number)
    except MeterbillError as problem:
        error = problem.message
        found = directory(container).search(text=q, state=None, plan=plan, page=1)
    return page(request, "console/tenants.html", found=found, q=q, state=state, plan=plan,
                states=STATES, plans=[p.key for p in container.catalog.plans], error=error)


@router.get("/{tenant_id}", include_in_schema=False)
def tenant_page(request: Request, tenant_id: TenantIdPath, container: ContainerDep,
                session: SessionDep) -> Response:
    try:
        detail = directory(container).detail(tenant_id)
    except MeterbillError as problem:
        if problem.status == 404:
            return page(request, "console/not_found.html", 404, what=f"tenant {tenant_id}")
        # Stripe unreachable: say so on a page, not in the API's JSON.
        return page(request, "console/problem.html", problem.status, message=problem.message)
    return page(request, "console/tenant.html", t=detail,
                held=container.invoice_review.list(status="held", tenant_id=tenant_id),
                plans=[p.key for p in container.catalog.plans],
                done=request.query_params.get("done"), failed=request.query_params.get("failed"),
                link=request.query_params.get("link"))


def _act(tenant_id: str, action: str, work: Callable[[], str]) -> Response:
    where = f"/admin/tenants/{tenant_id}"
    try:
        message = work()
    except MeterbillError as problem:
        return back_to(where, failed=f"{action}: {problem.message}")
    return back_to(where, done=message)


@router.post("/{tenant_id}/sync", include_in_schema=False)
def sync(tenant_id: TenantIdPath, container: ContainerDep, form: FormDep) -> Response:
    def work() -> str:
        since = datetime.now(UTC) - timedelta(days=CATCH_UP_DAYS)
        result = container.webhook_components().admin.catch_up(since)
        return (f"Asked Stripe for its events: {result.listed} listed, "
                f"{len(result.inserted)} new and processed.")
    return _act(tenant_id, "Sync from Stripe", work)


@router.post("/{tenant_id}/cancel", include_in_schema=False)
def cancel(tenant_id: TenantIdPath, container: ContainerDep, form: FormDep) -> Response:
    at_period_end = form.get("when") != "now"

    def work() -> str:
        subscription = container.tenants.get(tenant_id).subscription_id
        if subscription is None:
            raise_conflict("The tenant has no subscription to cancel.")
        view = container.subscriptions.cancel(str(subscription), at_period_end=at_period_end)
        return ("Cancels at the period end." if at_period_end
                else f"Canceled now: the subscription is {view.status}.")
    return _act(tenant_id, "Cancel", work)


@router.post("/{tenant_id}/plan", include_in_schema=False)
def change_plan(tenant_id: TenantIdPath, container: ContainerDep, form: FormDep) -> Response:
    def work() -> str:
        subscription = container.tenants.get(tenant_id).subscription_id
        if subscription is None:
            raise_conflict("The tenant has no subscription whose plan could change.")
        change = container.subscriptions.change_plan(str(subscription), form.get("plan", ""))
        when = "now" if change.effective == "now" else "at the period end"
        return f"Plan {change.from_plan} → {change.to_plan}, {when}."
    return _act(tenant_id, "Change plan", work)


@router.post("/{tenant_id}/retry-invoice", include_in_schema=False)
def retry_invoice(tenant_id: TenantIdPath, container: ContainerDep, form: FormDep) -> Response:
    def work() -> str:
        invoice = container.invoices.retry_open(tenant_id)
        return f"Invoice {invoice.number or invoice.id} is {invoice.status}."
    return _act(tenant_id, "Retry the open invoice", work)


@router.post("/{tenant_id}/billing-link", include_in_schema=False)
def billing_link(tenant_id: TenantIdPath, container: ContainerDep, form: FormDep) -> Response:
    service = CustomerBillingService(container.portal_links, container.tenants,
                                     container.invoices, usage_view_service(container))
    try:
        url = service.link(tenant_id)
    except MeterbillError as problem:
        return back_to(f"/admin/tenants/{tenant_id}", failed=problem.message)
    return back_to(f"/admin/tenants/{tenant_id}", done="A billing link for the customer "
                   f"(valid {container.settings.portal_link_days} days):", link=url)


@router.post("/{tenant_id}/send-billing-link", include_in_schema=False)
def send_billing_link(tenant_id: TenantIdPath, container: ContainerDep,
                      form: FormDep) -> Response:
    def work() -> str:
        outbox = container.notifications
        address = BillingLinkSender(container.db, outbox.notifier, outbox.after_commit
                                    ).send(tenant_id)
        return f"The billing link is in the outbox for {address}."
    return _act(tenant_id, "Send the billing link", work)


def raise_conflict(message: str) -> NoReturn:
    raise Conflict(message, code="no_subscription")
