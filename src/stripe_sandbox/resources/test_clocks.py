"""Test clocks: frozen time for a group of customers, advanced on demand.

Advancing runs, in time order, everything on the clock that falls due between the old and the
new `frozen_time` — trial notices and trial ends, renewals, drafts finalizing an hour later,
payment retries, incomplete expiry, cancellations at period end — with the clock's time moved
to each step, so objects made along the way carry the simulated time.

Stripe advances asynchronously. The sandbox does the work inside the advance request: the
response is the clock as Stripe answers it (`status: "advancing"`, `frozen_time` the target,
`status_details.advancing`), the `advancing` and `ready` events are both sent, and by the time
the response arrives the stored clock is already `ready` — so the usual stripe-python loop
(`while clock.status != "ready": clock = retrieve(...)`) ends at its first retrieve.

This module's `tick` also drives real time: the engine calls `tick(sandbox, None, now)` before
every request, which costs one heap peek when nothing is due.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from .. import invoicing, schedule, subscription_state  # noqa: F401 - registers due work
from ..engine import Call
from ..errors import InvalidRequestError, NotFoundError
from ..listing import paginate
from ..router import Routes
from ..wire import as_int
from .common import deleted, nullable, require

if TYPE_CHECKING:
    from ..engine import Sandbox

routes = Routes()

KIND = "test_helpers.test_clock"
DELETES_AFTER_SECONDS = 30 * 86400
_OWNED = ("subscription", "invoice", "invoiceitem", "payment_method")


def tick(sandbox: Sandbox, clock_id: str | None, until: int) -> None:
    """Run the billing work due on `clock_id` (None: real time) up to `until`."""
    subscription_state.follow_price_changes(sandbox)
    on_step = None
    if clock_id is not None:
        clock = sandbox.store.get(KIND, clock_id)
        if clock is None:
            return

        def on_step(t: int) -> None:
            clock["frozen_time"] = max(int(clock["frozen_time"]), t)

    schedule.run(sandbox, clock_id, until, on_step)


def _get(call: Call, clock_id: str) -> dict[str, Any]:
    clock = call.store.get(KIND, clock_id)
    if clock is None:
        raise NotFoundError("test_clock", clock_id)
    return clock


@routes.post("/v1/test_helpers/test_clocks")
def create(call: Call) -> dict[str, Any]:
    p = call.params
    frozen = as_int(require(p, "frozen_time"), "frozen_time")
    clock = {
        "id": call.store.new_id("clock"),
        "object": KIND,
        "created": int(time.time()),
        "deletes_after": int(time.time()) + DELETES_AFTER_SECONDS,
        "frozen_time": frozen,
        "livemode": False,
        "name": nullable(p.get("name")),
        "status": "ready",
        "status_details": {},
    }
    call.store.put(clock)
    call.sandbox.emit("test_helpers.test_clock.created", clock, request=call)
    return clock


@routes.get("/v1/test_helpers/test_clocks/{test_clock}")
def retrieve(call: Call, test_clock: str) -> dict[str, Any]:
    return _get(call, test_clock)


@routes.get("/v1/test_helpers/test_clocks")
def list_(call: Call) -> dict[str, Any]:
    return paginate(call.store.all(KIND), call.params, "/v1/test_helpers/test_clocks")


@routes.post("/v1/test_helpers/test_clocks/{test_clock}/advance")
def advance(call: Call, test_clock: str) -> dict[str, Any]:
    clock = _get(call, test_clock)
    target = as_int(require(call.params, "frozen_time"), "frozen_time")
    if clock["status"] != "ready":
        raise InvalidRequestError(
            f"The test clock {test_clock} is {clock['status']} and cannot be advanced now.",
            param="frozen_time")
    if target <= int(clock["frozen_time"]):
        raise InvalidRequestError(
            "The test clock can only be advanced to a time after its current frozen_time "
            f"({clock['frozen_time']}).", param="frozen_time")
    clock["status"] = "advancing"
    clock["status_details"] = {"advancing": {"target_frozen_time": target}}
    call.sandbox.emit("test_helpers.test_clock.advancing", clock, request=call)
    answer = copy.deepcopy(clock)
    answer["frozen_time"] = target
    try:
        call.sandbox.run_due(test_clock, target)
    finally:
        clock["frozen_time"] = target
        clock["status"] = "ready"
        clock["status_details"] = {}
    call.sandbox.emit("test_helpers.test_clock.ready", clock, request=call)
    return answer


@routes.delete("/v1/test_helpers/test_clocks/{test_clock}")
def delete(call: Call, test_clock: str) -> dict[str, Any]:
    """Deleting a clock deletes its customers and everything that belongs to them."""
    clock = _get(call, test_clock)
    customers = {c["id"] for c in call.store.all("customer") if c.get("test_clock") == test_clock}
    for kind in _OWNED:
        for obj in call.store.all(kind):
            if obj.get("customer") in customers or obj.get("test_clock") == test_clock:
                call.store.delete(kind, obj["id"])
    for customer_id in customers:
        call.store.delete("customer", customer_id)
    schedule.forget_clock(call.sandbox, test_clock)
    call.store.delete(KIND, test_clock)
    call.sandbox.emit("test_helpers.test_clock.deleted", clock, request=call)
    return deleted(clock)
