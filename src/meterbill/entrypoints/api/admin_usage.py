"""Operator routes on usage (`/admin/usage/...`), for the CLI beside a running server and the
admin console.

A DuckDB usage store admits one process, and `meterbill serve` holds it; so `meterbill usage
sync|reconcile` (and a webhook replayed by `meterbill webhooks replay` that flushes usage) ask
the server to do the work, through these routes, and print what they answer. The answers are
the same documents the commands print with `--json`.

- `POST /admin/usage/sync` `{date?, since?, tenants?}`: report usage Stripe's meters lack.
- `POST /admin/usage/reconcile` `{period?, tenants?}`: compare with Stripe's meter summaries.
- `POST /admin/usage/flush` `{customer_id, period_end}`: a customer's usage up to the end of
  a period, before its draft invoice finalizes (what `invoice.created` does).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter
from pydantic import AwareDatetime, Field

from meterbill.domain.clock import utcnow
from meterbill.domain.errors import InvalidInput
from meterbill.domain.usage import MAX_SYNC_SPAN

from .deps import ContainerDep
from .schemas import EXAMPLE_MONTH, CustomerId, TenantId, _Body

router = APIRouter(prefix="/admin/usage", tags=["admin"])

Tenants = list[TenantId] | None

class SyncRequest(_Body):
    # `dt.date`: a field called `date` would shadow the type in its own annotation.
    date: dt.date | None = Field(default=None, description="Sync this UTC day only (not in "
                                                        "the future).")
    since: dt.date | None = Field(default=None, description="Sync every day from this one to "
                                                         "today (late events); at most 366 "
                                                         "days back.")
    tenants: Tenants = Field(default=None, description="Only these tenants (default: all).")


class ReconcileRequest(_Body):
    period: str | None = Field(default=None, max_length=16, examples=["current", EXAMPLE_MONTH],
                               description="`current` (each tenant's billing period, the "
                                           "default) or a calendar month, YYYY-MM.")
    tenants: Tenants = Field(default=None, description="Only these tenants (default: all).")


class FlushRequest(_Body):
    customer_id: CustomerId
    period_end: AwareDatetime = Field(
        description="The end of the period whose invoice is drafted (with its UTC offset; at "
                    f"most {MAX_SYNC_SPAN.days} days ahead: the span a sync may cover).")


@router.post("/sync", summary="Report usage Stripe's meters lack (what `usage sync` does)")
def sync_usage(body: SyncRequest, container: ContainerDep) -> dict[str, Any]:
    if body.date is not None and body.since is not None:
        raise InvalidInput("Give date or since, not both.", field="since")
    # The service checks the days (domain.usage.check_sync_day), as it does for the CLI.
    report = container.usage_sync.sync(days=[body.date] if body.date else None,
                                       since=body.since, tenants=body.tenants)
    return report.to_dict()


@router.post("/reconcile",
             summary="Compare the usage store with Stripe's meter summaries; record drifts")
def reconcile_usage(body: ReconcileRequest, container: ContainerDep) -> dict[str, Any]:
    report = container.usage_reconcile.reconcile(body.period, tenants=body.tenants)
    return report.to_dict()


@router.post("/flush", summary="Report a customer's usage up to the end of a period")
def flush_usage(body: FlushRequest, container: ContainerDep) -> dict[str, Any]:
    if body.period_end > utcnow() + MAX_SYNC_SPAN:
        raise InvalidInput(f"period_end {body.period_end.isoformat()} is more than "
                           f"{MAX_SYNC_SPAN.days} days ahead; no billing period ends so late.",
                           field="period_end")
    container.usage_flush.flush(body.customer_id, body.period_end)
    return {"customer_id": body.customer_id, "period_end": body.period_end.isoformat(),
            "flushed": True}
