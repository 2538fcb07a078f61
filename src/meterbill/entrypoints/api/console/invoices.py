"""`/admin/invoices`: invoice verification's review queue (services/invoices/review.py). Each
held invoice with Stripe's lines and meterbill's and the one-line difference, the figures, and
approve / correct / void, each with a reason; who acted is the logged-in console user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from meterbill.adapters.db.invoice_checks import STATUSES
from meterbill.domain.errors import InvalidInput, MeterbillError

from ..deps import ContainerDep
from .common import FormDep, SessionDep, back_to
from .render import page

router = APIRouter(prefix="/admin/invoices")

ACTIONS = ("approve", "correct", "void")
DONE = {"approve": "approved: Stripe finalizes and collects it",
        "correct": "corrected: the difference added as an invoice item, then finalized",
        "void": "voided: the customer is charged nothing for it"}


def _back(value: str | None) -> str:
    # Back to the queue or a tenant's page of this console, never elsewhere.
    if value and value.startswith("/admin/") and not value.startswith("//"):
        return value
    return "/admin/invoices"


@router.get("", include_in_schema=False)
def queue(request: Request, container: ContainerDep, session: SessionDep,
          status: Annotated[str, Query(max_length=16)] = "held",
          tenant: Annotated[str, Query(max_length=128)] = "") -> Response:
    chosen, error = status, None
    if status not in (*STATUSES, "all"):
        chosen, error = "held", (f"There is no status {status!r}; choose one of "
                                 f"{', '.join(STATUSES)}, or all. Showing the held ones.")
    review = container.invoice_review
    items = review.list(status=None if chosen == "all" else chosen,
                        tenant_id=tenant.strip() or None, limit=200)
    return page(request, "console/invoices.html", items=items, figures=review.figures(),
                statuses=STATUSES, status=chosen, tenant=tenant, error=error,
                done=request.query_params.get("done"), failed=request.query_params.get("failed"))


@router.post("/{invoice_id}/{action}", include_in_schema=False)
def act(invoice_id: Annotated[str, Path(max_length=255)],
        action: Annotated[str, Path(max_length=16)], container: ContainerDep,
        session: SessionDep, form: FormDep) -> Response:
    where = _back(form.get("back"))
    if action not in ACTIONS:
        return back_to(where, failed=f"Unknown action {action!r}: approve, correct or void.")
    review = container.invoice_review
    try:
        if action == "approve":
            item = review.approve(invoice_id, by=session.user, reason=form.get("reason", ""))
        elif action == "void":
            item = review.void(invoice_id, by=session.user, reason=form.get("reason", ""))
        else:
            item = review.correct(invoice_id, by=session.user, reason=form.get("reason", ""),
                                  amount_cents=_cents(form.get("amount_cents", "")),
                                  description=form.get("description") or None)
    except MeterbillError as problem:
        return back_to(where, failed=f"{invoice_id}: {problem.message}")
    return back_to(where, done=f"Invoice {item.invoice_id} {DONE[action]}.")


def _cents(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"The amount must be whole cents, such as -400 for a $4.00 "
                           f"credit, not {text!r}.", field="amount_cents") from None
