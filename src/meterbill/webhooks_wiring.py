"""Webhook wiring: bootstrap's part for webhooks (it picks the verifier, Stripe reader, task
runner and seams). `webhooks_for(container)` gives the container's one `WebhookComponents`.

The task runner is the inline thread pool unless TASK_RUNNER=celery (then jobs go to the
broker at CELERY_BROKER_URL and `meterbill worker` processes them).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .adapters.db.session import Database
from .adapters.stripe_events import StripeEvents, StripeSignatureVerifier
from .adapters.tasks.inline import InlineTaskRunner
from .adapters.tasks.periodic import PeriodicJob
from .ports.tasks import TaskRunner
from .ports.webhooks import SignatureVerifier, StripeEventsPort
from .services.webhooks.admin import WebhookAdmin
from .services.webhooks.context import DunningPort, NoUsageFlush, UsageFlushPort
from .services.webhooks.intake import WebhookIntake
from .services.webhooks.options import WebhookOptions, options_from_settings
from .services.webhooks.processor import WebhookProcessor
from .services.webhooks.sweep import sweep

_BUILD_LOCK = threading.Lock()


@dataclass
class WebhookComponents:
    options: WebhookOptions
    db: Database
    processor: WebhookProcessor
    runner: TaskRunner
    intake: WebhookIntake
    admin: WebhookAdmin
    stripe: StripeEventsPort
    _sweeper: PeriodicJob | None = field(default=None, repr=False)

    def sweep(self, now: datetime | None = None) -> int:
        return sweep(self.db, self.runner, self.options, now)

    def start(self) -> None:
        """Start the periodic sweep in this process (inline runner; Celery uses beat)."""
        if self._sweeper is None and isinstance(self.runner, InlineTaskRunner):
            interval = self.options.sweep_interval_seconds
            self._sweeper = PeriodicJob(self.sweep, interval, first_delay=interval,
                                        name="meterbill-webhook-sweep").start()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.stop()
            self._sweeper = None
        self.intake.close()
        self.runner.close()


def build_webhooks(container: Any, *, options: WebhookOptions | None = None,
                   runner: TaskRunner | None = None, stripe: StripeEventsPort | None = None,
                   verifier: SignatureVerifier | None = None,
                   dunning: DunningPort | None = None, usage: UsageFlushPort | None = None,
                   **processor_kwargs: Any) -> WebhookComponents:
    """Wire webhook processing on a bootstrap `Container` (its db, gateway, catalog, settings).

    Every keyword replaces one part (tests, and the dunning and usage issues' seams)."""
    options = options or options_from_settings(container.settings)
    stripe = stripe or StripeEvents(container.gateway)
    verifier = verifier or StripeSignatureVerifier(options.signing_secrets,
                                                   options.tolerance_seconds)
    # Notices are recorded in the handler's transaction and sent right after its commit.
    processor_kwargs.setdefault("notifier", container.notifier)
    processor_kwargs.setdefault("on_notices", container.notifications.after_commit)
    processor = WebhookProcessor(container.db, stripe, container.catalog,
                                 dunning or _dunning(container),
                                 usage or getattr(container, "usage_flush", None)
                                 or NoUsageFlush(), options, **processor_kwargs)
    if runner is None:
        if options.task_runner == "celery":
            from .adapters.tasks.celery_app import CeleryTaskRunner

            runner = CeleryTaskRunner.from_options(options)
        else:
            runner = InlineTaskRunner(processor.process, options.workers)
    intake = WebhookIntake(container.db, verifier, runner,
                           is_handled=lambda event_type: event_type in processor.handlers)
    admin = WebhookAdmin(container.db, runner, intake, stripe)
    return WebhookComponents(options, container.db, processor, runner, intake, admin, stripe)


def _dunning(container: Any) -> DunningPort:
    """The container's dunning service (its policy, notifier and access writer)."""
    dunning: DunningPort = container.dunning
    return dunning


def webhooks_for(container: Any) -> WebhookComponents:
    """The container's webhook components, built on first use when bootstrap did not."""
    with _BUILD_LOCK:
        found = getattr(container, "webhooks", None)
        if found is None:
            found = build_webhooks(container)
            container.webhooks = found
        return found
