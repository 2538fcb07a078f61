"""The review queue of invoice verification (docs/invoice-verification.md), for operators and the
admin console: held drafts with both versions of their lines, the figures, and the three
actions, each recorded with who and why.

- `GET /invoices/review`: checked invoices (`?status=held` by default, `all` for every one).
- `GET /invoices/review/figures`: verified, held, approved, corrected, amount held, time to
  review, and the share verified before finalization (the SLO).
- `GET /invoices/review/{invoice_id}`: one.
- `POST /invoices/review/{invoice_id}/approve|correct|void` `{by, reason}` (correct also takes
  `amount_cents` and `description`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from meterbill.adapters.db.invoice_checks import STATUSES

from .deps import ContainerDep
from .schemas import _Body

router = APIRouter(prefix="/invoices/review", tags=["invoices"])

InvoicePath = Annotated[str, Path(pattern=r"^in_[A-Za-z0-9_]+$", max_length=64,
                                  description="A Stripe invoice id (in_...).")]
StatusQuery = Annotated[str, Query(
    description=f"One of {', '.join(STATUSES)}, or all.",
    pattern="^(" + "|".join((*STATUSES, "all")) + ")$")]


class Decision(_Body):
    by: str = Field(min_length=1, max_length=128, description="Who acts (a name or email).",
                    examples=["ops@example.com"])
    reason: str = Field(min_length=1, max_length=2000, description="Why; kept with the review.",
                        examples=["5,000 test queries were sent to Stripe by hand"])


class Correction(Decision):
    amount_cents: int | None = Field(
        default=None, ge=-100_000_000, le=100_000_000,
        description="The invoice item's amount; default: meterbill's total minus Stripe's.")
    description: str | None = Field(default=None, max_length=500,
                                    description="What the customer reads on the invoice.")


@router.get("", summary="Checked invoices, newest first (held ones by default)")
def list_reviews(container: ContainerDep, status: StatusQuery = "held",
                 tenant_id: Annotated[str | None, Query(max_length=128)] = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    items = container.invoice_review.list(status=None if status == "all" else status,
                                          tenant_id=tenant_id, limit=limit)
    return {"data": [item.to_dict() for item in items], "count": len(items)}


@router.get("/figures", summary="Verification figures and the share verified in time")
def figures(container: ContainerDep) -> dict[str, Any]:
    return container.invoice_review.figures().to_dict()


@router.get("/{invoice_id}", summary="One checked invoice with both versions of its lines")
def get_review(invoice_id: InvoicePath, container: ContainerDep) -> dict[str, Any]:
    return container.invoice_review.get(invoice_id).to_dict()


@router.post("/{invoice_id}/approve", summary="Finalize a held invoice as Stripe drafted it")
async def approve(invoice_id: InvoicePath, body: Decision,
                  container: ContainerDep) -> dict[str, Any]:
    item = await run_in_threadpool(container.invoice_review.approve, invoice_id, by=body.by,
                                   reason=body.reason)
    return item.to_dict()


@router.post("/{invoice_id}/correct",
             summary="Add an invoice item for the difference, then finalize")
async def correct(invoice_id: InvoicePath, body: Correction,
                  container: ContainerDep) -> dict[str, Any]:
    item = await run_in_threadpool(
        lambda: container.invoice_review.correct(invoice_id, by=body.by, reason=body.reason,
                                                 amount_cents=body.amount_cents,
                                                 description=body.description))
    return item.to_dict()


@router.post("/{invoice_id}/void", summary="Void a held invoice: nothing is charged")
async def void(invoice_id: InvoicePath, body: Decision,
               container: ContainerDep) -> dict[str, Any]:
    item = await run_in_threadpool(container.invoice_review.void, invoice_id, by=body.by,
                                   reason=body.reason)
    return item.to_dict()
