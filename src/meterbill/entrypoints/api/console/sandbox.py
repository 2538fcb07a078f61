"""Sandbox mode's clock in the console: the banner shows the test clocks' time, and a form moves
it a day, a week or past the next renewal (`SandboxClock.advance`, as `meterbill sandbox
advance` does), then says what happened, so an operator can watch a month happen."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from meterbill.domain.errors import MeterbillError

from ..deps import ContainerDep
from .common import FormDep, back_to

router = APIRouter(prefix="/admin/clock")  # /admin/sandbox/ is the API, behind the token

STEPS: dict[str, dict[str, Any]] = {
    "day": {"days": 1},
    "week": {"days": 7},
    "renewal": {"to_next_renewal": True},
}


@router.post("/advance", include_in_schema=False)
def advance(request: Request, container: ContainerDep, form: FormDep) -> Response:
    back = form.get("back") or "/admin"
    if not back.startswith("/admin"):  # only ever back into the console
        back = "/admin"
    step = STEPS.get(form.get("step", ""))
    if step is None:
        return back_to(back, failed="Choose how far to move the clock: a day, a week or to "
                                    "the next renewal.")
    try:
        report = container.sandbox_clock.advance(**step)
    except MeterbillError as problem:
        return back_to(back, failed=problem.message)
    return back_to(back, done=summary(report.to_dict()))


def summary(report: dict[str, Any]) -> str:
    """One sentence of what an advance did: the new date, invoices, dunning steps, emails."""
    invoices = report.get("invoices") or {}
    parts = [f"Sandbox clock moved to {report['reached'][:16].replace('T', ' ')} UTC"]
    made = {k: v for k, v in invoices.items() if not k.endswith("_cents") and v}
    if made:
        parts.append("invoices: " + ", ".join(f"{v} {k}" for k, v in sorted(made.items())))
    if report.get("dunning"):
        parts.append(f"{len(report['dunning'])} dunning step(s)")
    if report.get("emails"):
        parts.append(f"{len(report['emails'])} email(s)")
    if report.get("unhandled"):
        parts.append(f"{report['unhandled']} event(s) still being handled")
    return "; ".join(parts) + "."


def clock_now(container: Any) -> Any:
    """The test clocks' time for the banner, None when customers are not on test clocks."""
    return container.sandbox_clock.now() if container.uses_test_clocks else None
