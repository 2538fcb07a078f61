"""Bootstrap's part for webhooks: the verifier, the Stripe reader, the task runner (the inline
thread pool, or Celery with TASK_RUNNER=celery) and the processor with its handlers' seams.

`Container.webhook_components()` builds the container's one set on first use; tests and the
CLI call `build_webhooks` with a part replaced. The periodic sweep is a job of the schedule
table (bootstrap/jobs.py), not something the components start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..adapters.db.session import Database
from ..adapters.stripe_events import StripeEvents, StripeSignatureVerifier
from ..adapters.tasks.inline import InlineTaskRunner
from ..config import Settings
from ..ports.tasks import TaskRunner
from ..ports.webhooks import SignatureVerifier, StripeEventsPort
from ..services.webhooks.admin import WebhookAdmin
from ..services.webhooks.context import DunningPort, UsageFlushPort
from ..services.webhooks.intake import WebhookIntake
from ..services.webhooks.options import WebhookOptions, split_secrets
from ..services.webhooks.processor import WebhookProcessor
from ..services.webhooks.sweep import sweep

if TYPE_CHECKING:
    from .container import Container


@dataclass
class WebhookComponents:
    options: WebhookOptions
    db: Database
    processor: WebhookProcessor
    runner: TaskRunner
    intake: WebhookIntake
    admin: WebhookAdmin
    stripe: StripeEventsPort

    def sweep(self, now: datetime | None = None) -> int:
        """Dispatch again every row that is due; how many were submitted."""
        return sweep(self.db, self.runner, self.options, now)

    def close(self) -> None:
        self.intake.close()
        self.runner.close()


def webhook_options(settings: Settings, **overrides: Any) -> WebhookOptions:
    """The webhook settings (`WEBHOOK_*`, `TASK_RUNNER`, `CELERY_BROKER_URL`, the signing
    secrets of `STRIPE_WEBHOOK_SECRET`), with `overrides` on top."""
    secret = settings.stripe_webhook_secret
    values: dict[str, Any] = {
        "signing_secrets": split_secrets(secret.get_secret_value() if secret else None),
        "tolerance_seconds": settings.webhook_tolerance_seconds,
        "max_body_bytes": settings.webhook_max_body_bytes,
        "rate_limit_per_minute": settings.webhook_rate_limit_per_minute,
        "max_attempts": settings.webhook_max_attempts,
        "retry_base_seconds": settings.webhook_retry_base_seconds,
        "unknown_customer_hours": settings.webhook_unknown_customer_hours,
        "lease_seconds": settings.webhook_lease_seconds,
        "sweep_after_seconds": settings.webhook_sweep_after_seconds,
        "workers": settings.webhook_workers,
        "store_timeout_seconds": settings.webhook_store_timeout_seconds,
        "task_runner": settings.task_runner,
        "celery_broker_url": settings.celery_broker_url,
    }
    values.update(overrides)
    return WebhookOptions(**values)


def build_webhooks(container: Container, *, options: WebhookOptions | None = None,
                   runner: TaskRunner | None = None, stripe: StripeEventsPort | None = None,
                   verifier: SignatureVerifier | None = None,
                   dunning: DunningPort | None = None, usage: UsageFlushPort | None = None,
                   **processor_kwargs: Any) -> WebhookComponents:
    """Webhook processing on `container`'s database, Stripe, catalog, dunning and usage sync.

    Every keyword replaces one part (tests, the CLI's replay)."""
    options = options or webhook_options(container.settings)
    # The handlers' Stripe reads time out after STRIPE_WEBHOOK_TIMEOUT_SECONDS.
    stripe = stripe or StripeEvents(container.webhook_gateway,
                                    live=container.settings.mode == "live")
    verifier = verifier or StripeSignatureVerifier(options.signing_secrets,
                                                   options.tolerance_seconds)
    # Notices are recorded in the handler's transaction and sent right after its commit.
    processor_kwargs.setdefault("notifier", container.notifier)
    processor_kwargs.setdefault("on_notices", container.notifications.after_commit)
    processor_kwargs.setdefault("invoices", container.invoice_check)
    processor = WebhookProcessor(container.db, stripe, container.catalog,
                                 dunning or container.dunning, usage or container.usage_flush,
                                 options, **processor_kwargs)
    if runner is None:
        if options.task_runner == "celery":
            from ..adapters.tasks.celery_app import CeleryTaskRunner

            runner = CeleryTaskRunner.from_options(options)
        else:
            runner = InlineTaskRunner(processor.process, options.workers)
    intake = WebhookIntake(container.db, verifier, runner,
                           is_handled=lambda event_type: event_type in processor.handlers,
                           store_timeout=options.store_timeout_seconds)
    admin = WebhookAdmin(container.db, runner, intake, stripe)
    return WebhookComponents(options, container.db, processor, runner, intake, admin, stripe)
