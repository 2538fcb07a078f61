"""Time travel in sandbox mode (`/admin/sandbox/...`), for `meterbill sandbox advance` beside a
running server and the admin console's button: the server holds the sandbox and receives its
webhooks, so it moves the clocks and waits for what follows.

- `POST /admin/sandbox/advance` `{days | to | to_next_renewal}`: move every test clock of
  meterbill's customers; what happened (invoices made, paid, failed; dunning steps; emails).
  409 `not_sandbox_mode` with a Stripe key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import AwareDatetime, Field
from starlette.concurrency import run_in_threadpool

from .deps import ContainerDep
from .schemas import _Body

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
