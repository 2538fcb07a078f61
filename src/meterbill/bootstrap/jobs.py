"""The one table of periodic jobs. `meterbill serve` runs it with its inline scheduler when
TASK_RUNNER=inline; with TASK_RUNNER=celery, `meterbill worker --beat` runs the same table
through Celery beat and serve runs none of it. Every run goes through `JobRunner`, which
records it (`meterbill jobs list`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from ..config import Settings
from ..domain.clock import utcnow
from ..domain.schedule import DailyAt, Every, Schedule
from ..services.jobs import Job
from ..services.usage.reconcile import daily_job

if TYPE_CHECKING:
    from .container import Container

@dataclass(frozen=True)
class _Entry:
    name: str
    schedule: Callable[[Settings], Schedule | None]  # None: switched off by the settings
    action: Callable[[Container], Mapping[str, int]]
    leader: bool
    description: str
    lease_seconds: float = 3600.0


def _every(seconds: float, first_delay: float) -> Schedule | None:
    return Every(seconds, first_delay=first_delay) if seconds > 0 else None


def _daily(at: str) -> Schedule | None:
    return DailyAt.parse(at) if at.strip() else None


def _catch_up(container: Container, hours: float) -> dict[str, int]:
    """Store (and process) the events of the last `hours` that Stripe has and the inbox
    lacks: a lost delivery is handled within the hour without anyone asking."""
    since = utcnow() - timedelta(hours=hours)
    found = container.webhook_components().admin.catch_up(since)
    return {"listed": found.listed, "inserted": len(found.inserted)}


TABLE = (
    _Entry("webhook-sweep",
           lambda s: _every(s.webhook_sweep_interval_seconds, s.webhook_sweep_interval_seconds),
           lambda c: {"submitted": c.webhook_components().sweep()}, leader=False,
           description="dispatch again the inbox rows a lost message or a dead worker left"),
    _Entry("notifications",
           lambda s: _every(s.notification_send_interval_seconds,
                            s.notification_send_interval_seconds),
           lambda c: _counts(c.notifications.send_due().as_dict()), leader=False,
           description="send due emails and alerts, retrying failed ones"),
    _Entry("usage-sync",
           lambda s: _every(s.usage_sync_interval_seconds, s.usage_sync_first_run_seconds),
           lambda c: _counts(daily_job(c.usage_sync, c.usage_reconcile)), leader=True,
           lease_seconds=6 * 3600.0,
           description="report usage to Stripe's meters, then reconcile with them"),
    _Entry("subscription-reconcile", lambda s: _daily(s.reconcile_daily_at),
           lambda c: c.subscription_reconcile.run().as_counts(), leader=True,
           description="compare every subscription with Stripe's, correct ours, record and "
                       "alert each drift"),
    _Entry("webhook-catch-up",
           lambda s: _every(s.webhook_catch_up_interval_seconds,
                            s.webhook_catch_up_interval_seconds),
           lambda c: _catch_up(c, c.settings.webhook_catch_up_hours), leader=True,
           description="store the events of the last hours that Stripe lists and the inbox "
                       "lacks"),
    _Entry("webhook-catch-up-daily",
           lambda s: _daily("03:00") if s.webhook_catch_up_interval_seconds > 0 else None,
           lambda c: _catch_up(c, 24 * c.settings.webhook_catch_up_daily_days), leader=True,
           description="the same over the last days"),
    _Entry("slo-check",
           lambda s: _every(s.slo_check_interval_seconds, s.slo_check_interval_seconds),
           lambda c: c.slo_status.check(), leader=True,
           description="measure the SLOs; alert once when a breach starts and once when it "
                       "ends"),
    _Entry("overdue-invoices",
           lambda s: _every(s.overdue_check_interval_seconds, s.overdue_check_first_run_seconds),
           lambda c: c.overdue_invoices.run().as_dict(), leader=True,
           description="move tenants with emailed invoices long past due to the policy's "
                       "later overdue steps"),
    _Entry("invoice-review",
           lambda s: _every(s.invoice_review_interval_seconds,
                            s.invoice_review_interval_seconds),
           lambda c: {**c.invoice_verifier.recheck_held(), **c.invoice_review.remind()},
           leader=True,
           description="release held invoices whose numbers caught up; alert again about "
                       "the others nobody reviewed"),
)


def schedules(settings: Settings) -> dict[str, Schedule]:
    """When each job runs under these settings (what Celery beat is given)."""
    found = {entry.name: entry.schedule(settings) for entry in TABLE}
    return {name: schedule for name, schedule in found.items() if schedule is not None}


def schedule_table(container: Container) -> list[Job]:
    """Every job that is switched on, bound to `container`'s services."""
    when = schedules(container.settings)
    return [Job(entry.name, when[entry.name], _bind(entry.action, container), entry.leader,
                entry.description, entry.lease_seconds)
            for entry in TABLE if entry.name in when]


def _bind(action: Callable[[Container], Mapping[str, int]],
          container: Container) -> Callable[[], Mapping[str, int]]:
    return lambda: action(container)


def _counts(report: Mapping[str, object], prefix: str = "") -> dict[str, int]:
    """The integers of a report, nested keys joined with dots (`sync.sent`)."""
    counts: dict[str, int] = {}
    for key, value in report.items():
        if isinstance(value, Mapping):
            counts.update(_counts(value, f"{prefix}{key}."))
        elif isinstance(value, int) and not isinstance(value, bool):
            counts[f"{prefix}{key}"] = value
    return counts
