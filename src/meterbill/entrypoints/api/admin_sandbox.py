"""Time travel in sandbox mode (`/admin/sandbox/...`), for `meterbill sandbox advance` beside a
running server and the admin console's button: the server holds the sandbox and receives its
webhooks, so it moves the clocks and waits for what follows.

- `POST /admin/sandbox/advance` `{days | to | to_next_renewal}`: move every test clock of
  meterbill's customers; what happened (invoices made, paid, failed; dunning steps; emails).
  409 `not_sandbox_mode` with a Stripe key.
- `POST /admin/sandbox/demo` `{tenants, days}`: seed tenants a month back and simulate their
  month (`services/sandbox/demo.py`); the end table. 409 when the sandbox has clocks already.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from pydantic import AwareDatetime, Field
from starlette.concurrency import run_in_threadpool

from meterbill.domain.errors import Conflict

from .deps import ContainerDep
from .schemas import _Body

log = logging.getLogger("meterbill.demo")
router = APIRouter(prefix="/admin/sandbox", tags=["admin"])


class AdvanceRequest(_Body):
    days: float | None = Field(default=None, gt=0, le=366,
                               description="Move the clocks this many days forward.")
    to: AwareDatetime | None = Field(default=None, description="Move them to this moment.")
    to_next_renewal: bool = Field(default=False, description="Move them just past the next "
                                  "period end (or trial end) of a subscription.")


@router.post("/advance", summary="Sandbox mode: move time forward and report what happened")
async def advance(body: AdvanceRequest, container: ContainerDep) -> dict[str, Any]:
    clock = container.sandbox_clock  # 409 outside sandbox mode
    report = await run_in_threadpool(lambda: clock.advance(
        days=body.days, to=body.to, to_next_renewal=body.to_next_renewal))
    return report.to_dict()


class DemoRequest(_Body):
    tenants: int = Field(default=25, ge=1, le=200, description="How many tenants.")
    days: int | None = Field(default=None, ge=1, le=62, description="How many days back the "
                             "simulation starts (default: one calendar month).")


@router.post("/demo", summary="Sandbox mode: seed tenants and simulate their month of billing")
async def demo(body: DemoRequest, container: ContainerDep) -> dict[str, Any]:
    from meterbill.services.sandbox.demo import run_demo

    container.sandbox_clock  # noqa: B018 - 409 outside sandbox mode, before anything runs
    if not container.uses_test_clocks:
        raise Conflict("The demo moves test clocks, and SANDBOX_TEST_CLOCKS is false. Fix: "
                       "unset it (or set it to true).", code="test_clocks_off")
    summary = await run_in_threadpool(lambda: run_demo(
        container.demo_parts, tenants=body.tenants, days=body.days,
        progress=lambda line: log.info("%s", line)))
    return summary.to_dict()
