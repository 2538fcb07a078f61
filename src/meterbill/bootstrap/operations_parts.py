"""How the container makes the operations parts: subscription reconciliation, the SLOs and
`/ready`'s checks (docs/operations.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from ..adapters.stripe_meters import RequestPacer
from ..domain.clock import utcnow
from ..domain.schedule import Every
from ..domain.slo import load_slos
from ..services.operations.readiness import Readiness, ReadyChecks
from ..services.operations.slo import SloService
from ..services.reconcile.subscriptions import SubscriptionReconciler

if TYPE_CHECKING:
    from .container import Container


def subscription_reconcile(container: Container) -> SubscriptionReconciler:
    """Subscription reconciliation on the container's gateway, writer of access and outbox."""
    rate = container.settings.reconcile_requests_per_second
    return SubscriptionReconciler(container.db, container.gateway, container.catalog,
                                  container.access, container.notifier,
                                  on_notices=container.notifications.after_commit,
                                  pace=RequestPacer(rate).acquire if rate > 0 else None,
                                  clock=container.stripe_time)


def slo_status(container: Container) -> SloService:
    """The SLOs of SLO_FILE (or the shipped ones), measured on the container's database."""
    settings = container.settings
    return SloService(container.db, load_slos(settings.slo_file), container.catalog,
                      container.notifier,
                      usage_sync_interval=timedelta(seconds=settings.usage_sync_interval_seconds),
                      on_notices=container.notifications.after_commit)


def readiness(container: Container) -> Readiness:
    """`/ready`'s checks on this container's database, usage store and Stripe."""
    settings = container.settings
    intervals = [j.schedule.seconds for j in container.jobs.jobs.values()
                 if isinstance(j.schedule, Every)]
    heartbeat = timedelta(seconds=3 * min(intervals) + 60) if intervals else None
    inbox = next((s for s in container.slo_status.slos if s.name == "inbox_age_minutes"), None)
    limit = timedelta(minutes=float(inbox.threshold)) if inbox else timedelta(hours=1)

    def schema() -> str | None:
        status = container.schema_status()
        return f"{status.describe()}: run `meterbill db upgrade`" if status.behind else None

    def usage_store() -> None:
        now = utcnow()
        container.usage_store.total("_ready", "queries", now, now)

    return Readiness(container.db, ReadyChecks(schema, usage_store, container.stripe_health),
                     stripe_cache_seconds=settings.ready_stripe_cache_seconds,
                     heartbeat_within=heartbeat, inbox_age_limit=limit)
