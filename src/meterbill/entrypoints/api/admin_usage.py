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
from pydantic import Field

from meterbill.domain.errors import InvalidInput

from .deps import ContainerDep
from .schemas import TenantId, _Body

router = APIRouter(prefix="/admin/usage", tags=["admin"])

Tenants = list[TenantId] | None


class SyncRequest(_Body):
    # `dt.date`: a field called `date` would shadow the type in its own annotation.
    date: dt.date | None = Field(default=None, description="Sync this UTC day only.")
    since: dt.date | None = Field(default=None, description="Sync every day from this one to "
                                                         "today (late events).")
    tenants: Tenants = Field(default=None, description="Only these tenants (default: all).")


class ReconcileRequest(_Body):
    period: str | None = Field(default=None, max_length=16, examples=["current", "2026-05"],
                               description="`current` (each tenant's billing period, the "
                                           "default) or a calendar month, YYYY-MM.")
    tenants: Tenants = Field(default=None, description="Only these tenants (default: all).")


class FlushRequest(_Body):
    customer_id: str = Field(min_length=1, max_length=255, examples=["cus_123"])
    period_end: dt.datetime = Field(description="The end of the period whose invoice is drafted.")


@router.post("/sync", summary="Report usage Stripe's meters lack (what `usage sync` does)")
def sync_usage(body: SyncRequest, container: ContainerDep) -> dict[str, Any]:
    if body.date is not None and body.since is not None:
        raise InvalidInput("Give date or since, not both.", field="since")
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
    container.usage_flush.flush(body.customer_id, body.period_end)
    return {"customer_id": body.customer_id, "period_end": body.period_end.isoformat(),
            "flushed": True}
