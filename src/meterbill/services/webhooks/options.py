"""Webhook settings, read from `Settings` when it has them (else these defaults).

Environment names (upper case of the field names below, prefixed `WEBHOOK_`), e.g.
`WEBHOOK_MAX_ATTEMPTS=8`. `STRIPE_WEBHOOK_SECRET` may hold several secrets separated by commas
while an endpoint secret is being rolled.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any


@dataclass(frozen=True)
class WebhookOptions:
    signing_secrets: tuple[str, ...] = ()
    tolerance_seconds: int = 300  # how old a signature's timestamp may be (Stripe's default)
    max_body_bytes: int = 512 * 1024  # Stripe's events are far smaller
    rate_limit_per_minute: int = 1200  # per source address; 0 = no limit
    max_attempts: int = 8  # then the row is dead
    retry_base_seconds: float = 30.0  # backoff: base, 2x base, 4x base ... capped
    retry_max_seconds: float = 6 * 3600.0
    unknown_customer_hours: float = 1.0  # retry an event for an unknown customer, then park it
    lease_seconds: float = 300.0  # how long a worker owns a claimed row
    sweep_after_seconds: float = 60.0  # a received row this old is dispatched again
    sweep_interval_seconds: float = 30.0
    workers: int = 4  # inline runner threads
    task_runner: str = "inline"  # inline | celery
    celery_broker_url: str | None = None
    celery_queue: str = "meterbill-webhooks"

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    def retry_delay(self, attempts: int) -> timedelta:
        seconds = self.retry_base_seconds * 2 ** max(attempts - 1, 0)
        return timedelta(seconds=min(seconds, self.retry_max_seconds))


# Settings named without the `webhook_` prefix.
_UNPREFIXED = frozenset({"task_runner", "celery_broker_url"})


def split_secrets(value: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in (value or "").split(",") if s.strip())


def options_from_settings(settings: Any, **overrides: Any) -> WebhookOptions:
    """Options from a `Settings` object: `webhook_*` fields when present, `celery_broker_url`,
    `task_runner`, and the secrets in `stripe_webhook_secret`."""
    values: dict[str, Any] = {}
    secret = getattr(settings, "stripe_webhook_secret", None)
    if secret is not None:
        raw = secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret)
        values["signing_secrets"] = split_secrets(raw)
    for f in fields(WebhookOptions):
        if f.name == "signing_secrets":
            continue
        name = f.name if f.name in _UNPREFIXED else f"webhook_{f.name}"
        if getattr(settings, name, None) is not None:
            values[f.name] = getattr(settings, name)
    values.update(overrides)
    return WebhookOptions(**values)
