"""`POST /usage/report`: the seeds' manual report of a day's query total, made exact.

The total is stored as a usage event with a deterministic id (so the day's total becomes
`query_count` when that is higher, and a repeated report changes nothing), then that tenant-day
is synced to Stripe's meter; the answer says what was stored and sent. See
services/usage/report.py. 404 for an unknown tenant; 422 for a subscription that is not the
tenant's, a negative count, or a date outside Stripe's 35-day window.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from meterbill.domain.usage import MAX_QUANTITY
from meterbill.services.usage.report import ManualUsageReports

from .deps import ContainerDep
from .schemas import EXAMPLE_SUBSCRIPTION_ID, EXAMPLE_TODAY, SubscriptionId, TenantId

router = APIRouter(prefix="/usage", tags=["usage"])


class UsageReportBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tenant_id: TenantId
    subscription_id: SubscriptionId
    # strict: `true` is not one query. At most what one usage event may hold (the difference
    # is stored as one event; 2**64 was a 500).
    query_count: int = Field(ge=0, le=MAX_QUANTITY, strict=True, examples=[125000],
                             description="The day's total number of queries (not a delta).")
    date: dt.date | None = Field(default=None, examples=[EXAMPLE_TODAY],
                                 description="The UTC day; omitted = today.")


# EXAMPLE_SUBSCRIPTION_ID stands for the id POST /subscriptions answered; no date = today.
_EXAMPLES: dict[str, Any] = {"seeds": {
    "summary": "Today's query total (the seeds' example)",
    "value": {"tenant_id": "test_tenant_001", "subscription_id": EXAMPLE_SUBSCRIPTION_ID,
              "query_count": 125000}}}


@router.post(
    "/report",
    summary="Report a day's query total (manual)",
    description=(
        "Makes the usage store's total for the day at least `query_count` (one event with a "
        "deterministic id holds the difference) and syncs that day to Stripe. Repeating a "
        "report stores and sends nothing new. A lower count than stored changes nothing: "
        "delete events to take usage back."
    ),
)
async def report_usage(body: Annotated[UsageReportBody, Body(openapi_examples=_EXAMPLES)],
                       container: ContainerDep) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        reports = ManualUsageReports(container.db, container.usage_store, container.usage_sync)
        return reports.report(body.tenant_id, body.subscription_id, body.query_count,
                              body.date).to_dict()

    return await run_in_threadpool(run)
