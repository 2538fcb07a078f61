"""Celery: webhook jobs on a broker (Redis or RabbitMQ, from CELERY_BROKER_URL), processed by
`meterbill worker` processes that scale out; beat runs the schedule table's jobs.

Tasks carry only inbox row ids: the row is the job's state, so a lost or repeated message is
harmless (the sweep re-sends what was lost; the claim lets one worker through). Messages are
acknowledged late, so a worker killed mid-task has its message redelivered as well.

The intake hands over the rows of each committed batch together: `submit_many` sends up to
`ROWS_PER_MESSAGE` row ids per message. One publish costs about a millisecond of the API
process's CPU plus a broker round trip (measured in bench/bench_webhook_ack.py); per row, that
capped acknowledgements at a few hundred a second. A message's rows are processed one after
another by one worker thread, so the cap is small: alone, an event still travels alone.

No module-level app and no settings read here: `make_celery()` builds one per process
(`meterbill worker` for workers, `CeleryTaskRunner` for the API, which only sends), from what
the entrypoint hands it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import beat_embedded_init

from ...domain.schedule import DailyAt, Schedule
from ...services.webhooks.options import WebhookOptions

log = logging.getLogger("meterbill.webhooks")

PROCESS_TASK = "meterbill.webhooks.process"
PROCESS_MANY_TASK = "meterbill.webhooks.process_many"
RUN_JOB_TASK = "meterbill.jobs.run"
DEFAULT_QUEUE = "meterbill-webhooks"
ROWS_PER_MESSAGE = 8


def make_celery(broker_url: str, *, queue: str = DEFAULT_QUEUE,
                schedule: Mapping[str, Schedule] | None = None) -> Celery:
    """An app on `broker_url`; `schedule` (the schedule table's jobs) is what beat sends."""
    app = Celery("meterbill", broker=broker_url)
    app.conf.update(
        task_default_queue=queue,
        task_acks_late=True,  # a killed worker's message goes back to the queue
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=4,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        beat_schedule=beat_schedule(schedule or {}),
    )
    return app


def beat_schedule(schedule: Mapping[str, Schedule]) -> dict[str, Any]:
    """Beat's entries for the schedule table: one `RUN_JOB_TASK` per job, with its name."""
    return {f"meterbill-{name}": {"task": RUN_JOB_TASK, "args": (name,),
                                  "schedule": _celery_schedule(when)}
            for name, when in schedule.items()}


def _celery_schedule(when: Schedule) -> Any:
    if isinstance(when, DailyAt):
        return crontab(hour=when.at.hour, minute=when.at.minute)
    return when.seconds


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@beat_embedded_init.connect(weak=False)
def _beat_dies_with_its_worker(**_: Any) -> None:
    """`worker --beat` runs beat in a child process. A worker killed with SIGKILL cannot stop
    it, and the orphan would go on sending sweeps (and a restarted worker would start a second
    beat): ask the kernel to send the child SIGTERM when its parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        log.warning("beat cannot follow its worker's death (prctl errno %s)", ctypes.get_errno())
        return
    if os.getppid() == 1:  # the worker died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


class CeleryTaskRunner:
    """`TaskRunner` that sends the row id to the broker."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    @classmethod
    def from_options(cls, options: WebhookOptions) -> CeleryTaskRunner:
        if not options.celery_broker_url:
            raise ValueError("TASK_RUNNER=celery needs CELERY_BROKER_URL (redis://... or "
                             "amqp://...)")
        return cls(make_celery(options.celery_broker_url, queue=options.celery_queue))

    def submit(self, row_id: int) -> None:
        self.app.send_task(PROCESS_TASK, args=[row_id])

    def submit_many(self, row_ids: Sequence[int]) -> None:
        """The rows in messages of up to `ROWS_PER_MESSAGE`, over one producer."""
        if len(row_ids) == 1:
            self.submit(row_ids[0])
            return
        with self.app.producer_or_acquire() as producer:
            for start in range(0, len(row_ids), ROWS_PER_MESSAGE):
                self.app.send_task(PROCESS_MANY_TASK,
                                   args=[list(row_ids[start:start + ROWS_PER_MESSAGE])],
                                   producer=producer)

    def close(self) -> None:
        self.app.close()


def register_tasks(app: Celery, processor: Callable[[], Any],
                   run_job: Callable[[str], object]) -> None:
    """The worker's tasks: `processor()` gives this process's webhook processor (made on the
    first task, so that a forked worker child opens its own database connections);
    `run_job(name)` runs and records one job of the schedule table."""

    @app.task(name=PROCESS_TASK, shared=False)  # type: ignore[untyped-decorator]
    def process(row_id: int) -> str:
        return str(processor().process(int(row_id)).outcome)

    @app.task(name=PROCESS_MANY_TASK, shared=False)  # type: ignore[untyped-decorator]
    def process_many(row_ids: list[int]) -> list[str]:
        made = processor()
        return [str(made.process(int(row_id)).outcome) for row_id in row_ids]

    @app.task(name=RUN_JOB_TASK, shared=False)  # type: ignore[untyped-decorator]
    def run_job_task(name: str) -> str:
        run_job(name)
        return name
