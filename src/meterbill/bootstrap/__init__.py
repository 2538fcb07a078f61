"""The composition root: the only place that picks concrete adapters and wires services.

`build(settings)` makes the application's `Container`; `jobs.schedule_table` is the one table
of periodic jobs; `webhooks.build_webhooks` wires webhook processing. The API, the CLI, the
worker and Celery all take their parts from a container built here.
"""

from .container import Container, build

__all__ = ["Container", "build"]
