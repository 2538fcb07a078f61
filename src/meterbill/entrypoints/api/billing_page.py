"""`/billing/{tenant_id}`: the customer's billing page, from a signed, expiring link.

Public like the portal link: the signature is the authentication. A changed, cut or expired
link gets the same kind of page whether or not the tenant exists (403). The usage statement
comes as CSV and as PDF under the same link.
"""

from __future__ import annotations

import csv
import io
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from meterbill.adapters.text_pdf import text_pdf
from meterbill.domain.errors import MeterbillError
from meterbill.domain.money import format_cents
from meterbill.services.console.billing_page import CustomerBillingService
from meterbill.services.usage.view import TenantUsage

from .console.render import page
from .deps import ContainerDep
from .schemas import TenantIdPath
from .usage import usage_view_service

log = logging.getLogger("meterbill.api")

router = APIRouter(prefix="/billing", tags=["billing page"])

Expires = Annotated[str | None, Query(max_length=32)]
Sig = Annotated[str | None, Query(max_length=128)]
PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
REFUSED: dict[int | str, dict[str, Any]] = {
    403: {"description": "Link changed, cut short or expired (a page saying what to do)"}}


def _service(container: ContainerDep) -> CustomerBillingService:
    return CustomerBillingService(container.portal_links, container.tenants,
                                  container.invoices, usage_view_service(container))


def _refused(request: Request, error: MeterbillError) -> Response:
    log.warning("billing page link refused: %s", error.code)
    title = "Link expired" if error.code == "link_expired" else "Link not valid"
    if error.status >= 500:
        title = "Please try again"
    response = page(request, "billing/refused.html", error.status if error.status >= 500
                    else 403, title=title, message=error.message)
    response.headers.update(PRIVATE)
    return response


@router.get("/{tenant_id}", summary="The customer's billing page (signed link)",
            response_class=Response,
            responses={200: {"content": {"text/html": {}}}, **REFUSED})
def billing_page(request: Request, tenant_id: TenantIdPath, container: ContainerDep,
                 expires: Expires = None, sig: Sig = None) -> Response:
    try:
        data = _service(container).page(tenant_id, expires, sig)
    except MeterbillError as error:
        return _refused(request, error)
    plan = container.catalog.get(data.summary.plan) if data.summary.plan else None
    response = page(request, "billing/page.html", b=data, plan=plan)
    response.headers.update(PRIVATE)
    return response


def _statement(request: Request, container: ContainerDep, tenant_id: str,
               expires: str | None, sig: str | None) -> TenantUsage | Response:
    try:
        return _service(container).statement(tenant_id, expires, sig)
    except MeterbillError as error:
        return _refused(request, error)


@router.get("/{tenant_id}/statement.csv", summary="Usage statement, per day, as CSV",
            response_class=Response, responses={200: {"content": {"text/csv": {}}}, **REFUSED})
def statement_csv(request: Request, tenant_id: TenantIdPath, container: ContainerDep,
                  expires: Expires = None, sig: Sig = None) -> Response:
    usage = _statement(request, container, tenant_id, expires, sig)
    if isinstance(usage, Response):
        return usage
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["date", usage.metric])
    for day in usage.daily:
        writer.writerow([day.date.isoformat(), day.used])
    writer.writerow(["total", usage.used])
    name = f"usage-{tenant_id}-{usage.period.start.date().isoformat()}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={**PRIVATE, "Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/{tenant_id}/statement.pdf", summary="Usage statement, per day, as PDF",
            response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}, **REFUSED})
def statement_pdf(request: Request, tenant_id: TenantIdPath, container: ContainerDep,
                  expires: Expires = None, sig: Sig = None) -> Response:
    usage = _statement(request, container, tenant_id, expires, sig)
    if isinstance(usage, Response):
        return usage
    currency = usage.currency or "usd"
    lines = [f"Usage statement: {tenant_id}",
             f"Period {usage.period.start:%Y-%m-%d} to {usage.period.end:%Y-%m-%d} (UTC)", "",
             f"{'date':<12}{usage.metric:>14}"]
    lines += [f"{day.date.isoformat():<12}{day.used:>14,}" for day in usage.daily]
    lines += ["", f"{'total':<12}{usage.used:>14,}"]
    if usage.included is not None:
        lines.append(f"included in the plan: {usage.included:,}")
    if usage.total_amount is not None:
        lines.append(f"charges so far: {format_cents(usage.total_amount, currency)}")
    lines += ["", usage.sentence]
    name = f"usage-{tenant_id}-{usage.period.start.date().isoformat()}.pdf"
    return Response(text_pdf(lines), media_type="application/pdf",
                    headers={**PRIVATE, "Content-Disposition": f'attachment; filename="{name}"'})

