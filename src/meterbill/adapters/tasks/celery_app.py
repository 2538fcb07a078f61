"""Celery: webhook jobs on a broker (Redis or RabbitMQ, from CELERY_BROKER_URL), processed by
`meterbill worker` processes that scale out; beat runs the sweep.

Tasks carry only the inbox row id: the row is the job's state, so a lost or repeated message is
harmless (the sweep re-sends what was lost; the claim lets one worker through). Messages are
acknowledged late, so a worker killed mid-task has its message redelivered as well.

No module-level app: `make_celery()` builds one per process (`meterbill worker` for workers,
`CeleryTaskRunner` for the API, which only sends).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery

from ...services.webhooks.options import WebhookOptions

log = logging.getLogger("meterbill.webhooks")

PROCESS_TASK = "meterbill.webhooks.process"
SWEEP_TASK = "meterbill.webhooks.sweep"
DEFAULT_QUEUE = "meterbill-webhooks"


def make_celery(broker_url: str, *, queue: str = DEFAULT_QUEUE,
                sweep_interval_seconds: float = 30.0) -> Celery:
    app = Celery("meterbill", broker=broker_url)
    app.conf.update(
        task_default_queue=queue,
        task_acks_late=True,  # a killed worker's message goes back to the queue
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=4,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        beat_schedule={"meterbill-webhook-sweep": {
            "task": SWEEP_TASK, "schedule": sweep_interval_seconds}},
    )
    return app


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

    def close(self) -> None:
        self.app.close()


def register_tasks(app: Celery, components: Callable[[], Any]) -> None:
    """The worker's tasks; `components()` gives this process's `WebhookComponents` (built on
    first use, so that a forked worker child opens its own database connections)."""

    @app.task(name=PROCESS_TASK)  # type: ignore[untyped-decorator]
    def process(row_id: int) -> str:
        return str(components().processor.process(int(row_id)).outcome)

    @app.task(name=SWEEP_TASK)  # type: ignore[untyped-decorator]
    def sweep() -> int:
        return int(components().sweep())


def lazy(factory: Callable[[], Any]) -> Callable[[], Any]:
    """`factory()` once per process, on first call."""
    lock = threading.Lock()
    made: list[Any] = []

    def get() -> Any:
        with lock:
            if not made:
                made.append(factory())
            return made[0]

    return get
