"""`meterbill worker`: a Celery worker processing webhook events from the broker.

Run as many as needed, on as many machines, against the same database and broker. `--beat`
also runs the periodic sweep in this process (run it in exactly one place).
Also runnable as `python -m meterbill.entrypoints.worker`.
"""

from __future__ import annotations

import logging
from typing import Annotated

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
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "INFO",
) -> None:
    """Process Stripe webhook events from the Celery broker until stopped."""
    from meterbill.adapters.tasks.celery_app import (
        CeleryTaskRunner,
        lazy,
        make_celery,
        register_tasks,
    )
    from meterbill.bootstrap import build
    from meterbill.services.webhooks.options import options_from_settings
    from meterbill.webhooks_wiring import build_webhooks

    def components():  # type: ignore[no-untyped-def]
        container = build()
        options = options_from_settings(container.settings, task_runner="celery",
                                        celery_broker_url=broker, celery_queue=queue)
        return build_webhooks(container, options=options, runner=CeleryTaskRunner(app))

    app = make_celery(broker, queue=queue)
    register_tasks(app, lazy(components))
    argv = ["worker", f"--queues={queue}", f"--concurrency={concurrency}", f"--pool={pool}",
            f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    if beat:
        argv.append("--beat")
    app.worker_main(argv)


def main() -> None:
    typer.run(worker)


if __name__ == "__main__":
    main()
