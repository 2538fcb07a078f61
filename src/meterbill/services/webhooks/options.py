"""How webhook intake and processing behave. The values come from `Settings` (the one place
their defaults live, names prefixed `WEBHOOK_`), read by `bootstrap.webhooks.webhook_options`.
`STRIPE_WEBHOOK_SECRET` may hold several secrets separated by commas while an endpoint secret
is being rolled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class WebhookOptions:
    signing_secrets: tuple[str, ...]
    tolerance_seconds: int  # how old a signature's timestamp may be
    max_body_bytes: int
    rate_limit_per_minute: int  # per source address; 0 = no limit
    max_attempts: int  # then the row is dead
    retry_base_seconds: float  # backoff: base, 2x base, 4x base ... capped
    unknown_customer_hours: float  # retry an event for an unknown customer, then park it
    lease_seconds: float  # how long a worker owns a claimed row
    sweep_after_seconds: float  # a received row this old is dispatched again
    workers: int  # inline runner threads
    task_runner: str  # inline | celery
    celery_broker_url: str | None
    store_timeout_seconds: float = 5.0  # a delivery not committed by then is answered 503
    celery_queue: str = "meterbill-webhooks"  # `meterbill worker --queue`
    retry_max_seconds: float = 6 * 3600.0

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    def retry_delay(self, attempts: int) -> timedelta:
        seconds = self.retry_base_seconds * 2 ** max(attempts - 1, 0)
        return timedelta(seconds=min(seconds, self.retry_max_seconds))


def split_secrets(value: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in (value or "").split(",") if s.strip())
