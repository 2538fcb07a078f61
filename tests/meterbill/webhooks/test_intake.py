"""The intake's group commit and handoff: deliveries that arrive together are committed
together, every new row reaches the task runner exactly once, and Celery gets several rows
per message."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from meterbill.adapters.tasks.celery_app import (
    PROCESS_MANY_TASK,
    PROCESS_TASK,
    ROWS_PER_MESSAGE,
    CeleryTaskRunner,
    make_celery,
    register_tasks,
)
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import build_webhooks
from meterbill.ports.webhooks import parse_event
from meterbill.services.webhooks.context import HandlerContext, InboxEvent

from .conftest import fake_event, inbox_rows, make_options, sign


class BatchRecorder:
    """A task runner that also takes many rows at once; records what it was given."""

    def __init__(self) -> None:
        self.singles: list[int] = []
        self.batches: list[list[int]] = []
        self._lock = threading.Lock()

    def submit(self, row_id: int) -> None:
        with self._lock:
            self.singles.append(row_id)

    def submit_many(self, row_ids: Sequence[int]) -> None:
        with self._lock:
            self.batches.append(list(row_ids))

    def handed(self) -> list[int]:
        with self._lock:
            return self.singles + [i for batch in self.batches for i in batch]

    def close(self) -> None:
        pass


def _noop(ctx: HandlerContext, event: InboxEvent) -> str:
    return "noop"


def test_deliveries_arriving_together_are_stored_and_handed_over_together(
        container: Container) -> None:
    runner = BatchRecorder()
    hooks = build_webhooks(container, options=make_options(), runner=runner,
                           handlers={"product.created": _noop})
    try:
        bodies = [fake_event(event_id=f"evt_test_batch_{n:03d}") for n in range(40)]
        # Queued faster than one commit takes: the writer finds them waiting.
        futures = [hooks.intake.submit(body, sign(body)) for body in bodies]
        futures.append(hooks.intake.submit(bodies[0], sign(bodies[0])))  # a repeat
        receipts = [future.result(timeout=30) for future in futures]
        deadline = time.monotonic() + 10
        while len(runner.handed()) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        hooks.close()
    rows = inbox_rows(container)
    assert sorted(r.event_id for r in rows) == sorted(parse_event(b).id for b in bodies)
    assert [r.new for r in receipts] == [True] * 40 + [False]
    assert sorted(runner.handed()) == sorted(r.id for r in rows)  # each once
    assert max(len(batch) for batch in runner.batches) > 1


@dataclass
class _Outcome:
    outcome: str


class _Processor:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def process(self, row_id: int) -> _Outcome:
        self.seen.append(row_id)
        return _Outcome("handled")



def test_celery_gets_several_rows_per_message_and_the_worker_task_runs_each() -> None:
    app = make_celery("memory://", queue="meterbill-test-batch")
    runner = CeleryTaskRunner(app)
    runner.submit_many(list(range(1, 21)))
    runner.submit_many([42])
    sent = []
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        while (message := channel.basic_get("meterbill-test-batch", no_ack=True)) is not None:
            sent.append((message.headers["task"], message.decode()[0]))
    assert ROWS_PER_MESSAGE == 8
    assert sent == [(PROCESS_MANY_TASK, [[1, 2, 3, 4, 5, 6, 7, 8]]),
                    (PROCESS_MANY_TASK, [[9, 10, 11, 12, 13, 14, 15, 16]]),
                    (PROCESS_MANY_TASK, [[17, 18, 19, 20]]),
                    (PROCESS_TASK, [42])]
    processor = _Processor()
    register_tasks(app, lambda: processor, run_job=lambda name: None)
    assert app.tasks[PROCESS_MANY_TASK].run([9, 10, 11]) == ["handled"] * 3
    assert processor.seen == [9, 10, 11]
