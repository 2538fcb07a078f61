"""What falls due when: billing periods on the calendar, and a next-due queue per clock.

Periods follow Stripe's billing cycle anchor: a monthly subscription anchored on Jan 31 renews on
Feb 28 (29), Mar 31, Apr 30 ... — each boundary is the anchor plus N months, clamped to the last
day of the month, at the anchor's time of day (UTC). Days and weeks are exact seconds.

The queue holds `(due, object id)` per test clock (and one for real time). Each object type
registers `next_due(obj)` and `process(sandbox, obj, at)`; callers `touch` an object whenever
something about it may have changed, and `run` pops entries in time order. Entries are checked
against the object's current `next_due` when popped, so a stale entry costs one comparison and
nothing is ever scanned: a request with nothing due does one dict lookup and one heap peek.
"""

from __future__ import annotations

import calendar
import heapq
import itertools
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Sandbox

DAY = 86400
_INTERVAL_SECONDS = {"day": DAY, "week": 7 * DAY}


# --- calendar --------------------------------------------------------------------------------


def add_months(ts: int, months: int) -> int:
    """`ts` moved by whole months, the day clamped to the month's last day (UTC)."""
    dt = datetime.fromtimestamp(ts, tz=UTC)
    index = dt.year * 12 + (dt.month - 1) + months
    year, month = divmod(index, 12)
    day = min(dt.day, calendar.monthrange(year, month + 1)[1])
    return int(dt.replace(year=year, month=month + 1, day=day).timestamp())


def boundary(anchor: int, interval: str, count: int, n: int) -> int:
    """The n-th period boundary after `anchor` (n=0 is the anchor itself)."""
    if interval in _INTERVAL_SECONDS:
        return anchor + n * count * _INTERVAL_SECONDS[interval]
    months = count * (12 if interval == "year" else 1)
    return add_months(anchor, n * months)


def anchor_from_config(at: int, interval: str, count: int, day_of_month: int,
                       hour: int, minute: int, second: int, month: int | None) -> tuple[int, int]:
    """`billing_cycle_anchor_config`: the first anchor strictly after `at` on `day_of_month`
    (the month's last day when it is shorter) at `hour:minute:second` UTC, in `month` for
    yearly prices; and the reference later boundaries count from, a month holding the day, so
    that day 31 first anchored on Feb 28 renews on Mar 31."""

    def at_day(index: int, day: int) -> int:
        year, month0 = divmod(index, 12)
        day = min(day, calendar.monthrange(year, month0 + 1)[1])
        return int(datetime(year, month0 + 1, day, hour, minute, second, tzinfo=UTC)
                   .timestamp())

    start = datetime.fromtimestamp(at, tz=UTC)
    index = start.year * 12 + start.month - 1
    if month is not None:
        index += (month - start.month) % 12
    while at_day(index, day_of_month) <= at:
        index += 1 if month is None else 12
    anchor = at_day(index, day_of_month)
    months = count * (12 if interval == "year" else 1)
    reference = index
    for _ in range(12):
        year, month0 = divmod(reference, 12)
        if calendar.monthrange(year, month0 + 1)[1] >= day_of_month:
            break
        reference -= months
    return anchor, at_day(reference, day_of_month)


def next_boundary(anchor: int, interval: str, count: int, after: int) -> int:
    """The first boundary strictly after `after` (boundaries are counted from `anchor`)."""
    if after < anchor:
        return anchor
    if interval in _INTERVAL_SECONDS:
        step = count * _INTERVAL_SECONDS[interval]
        return anchor + ((after - anchor) // step + 1) * step
    months = count * (12 if interval == "year" else 1)
    dt_anchor = datetime.fromtimestamp(anchor, tz=UTC)
    dt_after = datetime.fromtimestamp(after, tz=UTC)
    elapsed = (dt_after.year - dt_anchor.year) * 12 + dt_after.month - dt_anchor.month
    n = max(0, elapsed // months - 1)
    while boundary(anchor, interval, count, n) <= after:
        n += 1
    return boundary(anchor, interval, count, n)


def format_day(ts: int) -> str:
    """Stripe's line descriptions date style: `03 Mar 2017`."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%d %b %Y")


# --- the due queue ---------------------------------------------------------------------------

NextDue = Callable[[dict[str, Any]], "int | None"]
Process = Callable[["Sandbox", dict[str, Any], int], None]


@dataclass
class _Kind:
    next_due: NextDue
    process: Process
    clock_of: Callable[[dict[str, Any]], str | None]


_KINDS: dict[str, _Kind] = {}  # object type -> how its due work is found and done (static)


def register(object_type: str, next_due: NextDue, process: Process,
             clock_of: Callable[[dict[str, Any]], str | None] | None = None) -> None:
    _KINDS[object_type] = _Kind(next_due, process, clock_of or (lambda o: o.get("test_clock")))


@dataclass
class Queue:
    heaps: dict[str | None, list[tuple[int, int, str]]] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)  # object id -> due time it is queued at
    seq: Any = field(default_factory=itertools.count)
    store_tables: Any = None  # the store's table dict this queue was built from
    running: bool = False


_QUEUES: weakref.WeakKeyDictionary[Any, Queue] = weakref.WeakKeyDictionary()


def _queue(sandbox: Sandbox) -> Queue:
    queue = _QUEUES.get(sandbox)
    tables = sandbox.store.snapshot()
    if queue is None or queue.store_tables is not tables:
        # First use, or the store was restored from a snapshot: rebuild from the objects.
        queue = Queue(store_tables=tables)
        _QUEUES[sandbox] = queue
        for object_type in _KINDS:
            for obj in sandbox.store.all(object_type):
                _push(queue, obj)
    return queue


def _push(queue: Queue, obj: dict[str, Any]) -> None:
    kind = _KINDS[obj["object"]]
    due = kind.next_due(obj)
    if due is None:
        queue.queued.pop(obj["id"], None)
        return
    if queue.queued.get(obj["id"]) == due:
        return
    queue.queued[obj["id"]] = due
    heap = queue.heaps.setdefault(kind.clock_of(obj), [])
    heapq.heappush(heap, (due, next(queue.seq), obj["id"]))


def touch(sandbox: Sandbox, obj: dict[str, Any]) -> None:
    """Re-read when `obj` next falls due; call after any change to its schedule."""
    _push(_queue(sandbox), obj)


def forget_clock(sandbox: Sandbox, clock_id: str) -> None:
    queue = _queue(sandbox)
    for _, _, object_id in queue.heaps.pop(clock_id, []):
        queue.queued.pop(object_id, None)


def next_due_at(sandbox: Sandbox, clock_id: str | None) -> int | None:
    """When the earliest work on `clock_id` falls due (None: nothing queued)."""
    queue = _queue(sandbox)
    heap = queue.heaps.get(clock_id) or []
    while heap and queue.queued.get(heap[0][2]) != heap[0][0]:
        heapq.heappop(heap)  # superseded entries are dropped lazily
    return heap[0][0] if heap else None


def run(sandbox: Sandbox, clock_id: str | None, until: int,
        on_step: Callable[[int], None] | None = None) -> None:
    """Do everything on `clock_id` that falls due up to `until`, earliest first.

    `on_step(t)` is called before each step (a test clock moves its frozen time there, so
    objects made by the step carry the simulated time).
    """
    queue = _queue(sandbox)
    heap = queue.heaps.get(clock_id)
    if not heap or heap[0][0] > until or queue.running:
        return
    queue.running = True
    try:
        done: set[tuple[str, int]] = set()
        while heap and heap[0][0] <= until:
            due, _, object_id = heapq.heappop(heap)
            if queue.queued.get(object_id) != due:
                continue  # superseded by a later touch
            del queue.queued[object_id]
            obj = sandbox.store.get_any(object_id)
            if obj is None or obj["object"] not in _KINDS:
                continue
            kind = _KINDS[obj["object"]]
            current = kind.next_due(obj)
            if current is None:
                continue
            if current > due:  # moved later without a touch: queue it where it belongs
                _push(queue, obj)
                continue
            if (object_id, due) in done:
                raise RuntimeError(f"billing schedule made no progress on {object_id} at {due}")
            done.add((object_id, due))
            if on_step is not None:
                on_step(due)
            kind.process(sandbox, obj, due)
            _push(queue, obj)
            heap = queue.heaps.get(clock_id) or []
    finally:
        queue.running = False
