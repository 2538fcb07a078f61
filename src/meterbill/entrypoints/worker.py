"""`meterbill worker`: a Celery worker processing webhook events from the broker.

Run as many as needed, on as many machines, against the same database and broker (Redis or
RabbitMQ). `--beat` also runs the schedule table (bootstrap/jobs.py: the webhook sweep every
`--sweep-interval` seconds, the notification sender, the usage sync, due plan changes) in this
process: run it in exactly one place. Without beat nothing re-dispatches a lost message or a
killed worker's rows.
Also runnable as `python -m meterbill.entrypoints.worker`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Annotated, Any

import typer
from celery import Celery

from meterbill.bootstrap import Container, build
from meterbill.bootstrap.webhooks import WebhookComponents
from meterbill.config import Settings

log = logging.getLogger("meterbill.worker")


def worker(
    broker: Annotated[str, typer.Option("--broker", envvar="CELERY_BROKER_URL",
                                        help="redis://host:6379/0 or amqp://... (env "
                                             "CELERY_BROKER_URL).")],
    queue: Annotated[str, typer.Option(envvar="METERBILL_CELERY_QUEUE",
                                       help="Queue to consume.")] = "meterbill-webhooks",
    concurrency: Annotated[int, typer.Option(help="Worker processes/threads.")] = 4,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads, solo.")] = "threads",
    beat: Annotated[bool, typer.Option("--beat", help="Also run the schedule table's jobs "
                                                      "(Celery beat).")] = False,
    sweep_interval: Annotated[float | None, typer.Option(
        "--sweep-interval", help="Seconds between webhook sweeps with --beat (default "
                                 "WEBHOOK_SWEEP_INTERVAL_SECONDS, 30).")] = None,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Process Stripe webhook events from the Celery broker until stopped."""
    overrides: dict[str, Any] = {"task_runner": "celery", "celery_broker_url": broker}
    if sweep_interval is not None:
        overrides["webhook_sweep_interval_seconds"] = sweep_interval
    settings = Settings().model_copy(update=overrides)
    run_worker(settings, queue, concurrency=concurrency, pool=pool, beat=beat,
               loglevel=loglevel)


def run_worker(settings: Settings, queue: str, *, concurrency: int = 4, pool: str = "threads",
               beat: bool = False, loglevel: str = "INFO",
               container: Callable[[], Container] | None = None,
               components: Callable[[Container, Celery], WebhookComponents] | None = None,
               ) -> None:
    """Run a Celery worker in this process until it is stopped.

    `container()` gives this process's container (default: bootstrap's, from `settings`) and
    `components(container, app)` its webhook components (default: `build_webhooks` sending to
    `app`); both are made on the first task, so that every worker process opens its own
    connections.
    """
    from meterbill.adapters.tasks.celery_app import make_celery, register_tasks
    from meterbill.bootstrap.jobs import schedules

    assert settings.celery_broker_url is not None
    made = once(container or (lambda: build(settings)))
    app = make_celery(settings.celery_broker_url, queue=queue, schedule=schedules(settings))
    wire = components or _components(queue)

    def processor() -> Any:
        found = made()
        with found.lock:
            if found.webhooks is None:
                found.webhooks = wire(found, app)
        return found.webhooks.processor

    register_tasks(app, processor, lambda name: made().jobs.run(name))
    argv = ["worker", f"--queues={queue}", f"--concurrency={concurrency}", f"--pool={pool}",
            f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    if beat:
        argv.append("--beat")
    app.worker_main(argv)


def _components(queue: str) -> Callable[[Container, Celery], WebhookComponents]:
    def wire(container: Container, app: Celery) -> WebhookComponents:
        from meterbill.adapters.tasks.celery_app import CeleryTaskRunner
        from meterbill.bootstrap.webhooks import build_webhooks, webhook_options

        options = webhook_options(container.settings, celery_queue=queue)
        return build_webhooks(container, options=options, runner=CeleryTaskRunner(app))

    return wire


def once(factory: Callable[[], Container]) -> Callable[[], Container]:
    """`factory()` once per process, on first call."""
    lock = threading.Lock()
    made: list[Container] = []

    def get() -> Container:
        with lock:
            if not made:
                made.append(factory())
            return made[0]

    return get


def main() -> None:
    typer.run(worker)


if __name__ == "__main__":
    main()
