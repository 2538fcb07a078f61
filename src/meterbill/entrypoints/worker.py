"""`meterbill worker`: a Celery worker processing webhook events from the broker.

Run as many as needed, on as many machines, against the same database and broker (Redis or
RabbitMQ). `--beat` also runs the periodic sweep in this process, every `--sweep-interval`
seconds: run it in exactly one place. Without beat nothing re-dispatches a lost message or a
killed worker's rows.
Also runnable as `python -m meterbill.entrypoints.worker`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

import typer

log = logging.getLogger("meterbill.worker")


def worker(
    broker: Annotated[str, typer.Option("--broker", envvar="CELERY_BROKER_URL",
                                        help="redis://host:6379/0 or amqp://... (env "
                                             "CELERY_BROKER_URL).")],
    queue: Annotated[str, typer.Option(envvar="METERBILL_CELERY_QUEUE",
                                       help="Queue to consume.")] = "meterbill-webhooks",
    concurrency: Annotated[int, typer.Option(help="Worker processes/threads.")] = 4,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads, solo.")] = "threads",
    beat: Annotated[bool, typer.Option("--beat", help="Also run the periodic sweep.")] = False,
    sweep_interval: Annotated[float | None, typer.Option(
        "--sweep-interval", help="Seconds between sweeps with --beat (default "
                                 "WEBHOOK_SWEEP_INTERVAL_SECONDS, 30).")] = None,
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Process Stripe webhook events from the Celery broker until stopped."""
    if sweep_interval is None:
        from meterbill.config import Settings

        sweep_interval = Settings().webhook_sweep_interval_seconds
    run_worker(broker, queue, concurrency=concurrency, pool=pool, beat=beat,
               sweep_interval_seconds=sweep_interval, loglevel=loglevel)


def run_worker(broker: str, queue: str, *, concurrency: int = 4, pool: str = "threads",
               beat: bool = False, sweep_interval_seconds: float = 30.0,
               loglevel: str = "INFO",
               components: Callable[[Any], Any] | None = None) -> None:
    """Run a Celery worker in this process until it is stopped.

    `components(app)` builds this process's `WebhookComponents` around the Celery app (default:
    bootstrap's container and settings); it is called once, on the first task, so that every
    worker process opens its own database connections.
    """
    from meterbill.adapters.tasks.celery_app import lazy, make_celery, register_tasks

    app = make_celery(broker, queue=queue, sweep_interval_seconds=sweep_interval_seconds)
    build = components or _bootstrap_components(broker, queue)
    register_tasks(app, lazy(lambda: build(app)))
    argv = ["worker", f"--queues={queue}", f"--concurrency={concurrency}", f"--pool={pool}",
            f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    if beat:
        argv.append("--beat")
    app.worker_main(argv)


def _bootstrap_components(broker: str, queue: str) -> Callable[[Any], Any]:
    def build(app: Any) -> Any:
        from meterbill.adapters.tasks.celery_app import CeleryTaskRunner
        from meterbill.bootstrap import build as build_container
        from meterbill.services.webhooks.options import options_from_settings
        from meterbill.webhooks_wiring import build_webhooks

        container = build_container()
        options = options_from_settings(container.settings, task_runner="celery",
                                        celery_broker_url=broker, celery_queue=queue)
        return build_webhooks(container, options=options, runner=CeleryTaskRunner(app))

    return build


def main() -> None:
    typer.run(worker)


if __name__ == "__main__":
    main()
