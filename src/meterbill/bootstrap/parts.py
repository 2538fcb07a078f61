"""How the container makes the parts it builds on first use (bootstrap/container.py): the
outbox with its senders, the dunning service, the entitlement answers, the usage store and
its sync on Stripe's meters, the billing portal, invoice verification and its review queue."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from ..adapters.stripe_events import StripeEvents
from ..adapters.stripe_gateway import StripeGateway
from ..adapters.stripe_invoice_drafts import StripeInvoiceDrafts
from ..adapters.stripe_invoices import StripeInvoices
from ..adapters.stripe_meters import RequestPacer
from ..domain.clock import utcnow
from ..domain.schedule import Every
from ..domain.slo import load_slos
from ..ports.notify import Notice, Notifier
from ..ports.usage_store import UsageStore
from ..services.access.dunning import DunningService
from ..services.access.entitlement import EntitlementService, UsageTotals
from ..services.access.overdue import OverdueInvoices
from ..services.billing.invoices import InvoiceService
from ..services.invoices.review import InvoiceReviewService
from ..services.invoices.verify import InvoiceVerifier
from ..services.notifications.outbox import NotificationService
from ..services.notifications.portal_links import PortalService
from ..services.operations.readiness import Readiness, ReadyChecks
from ..services.operations.slo import SloService
from ..services.reconcile.subscriptions import SubscriptionReconciler
from ..services.sandbox.clock import SandboxClock
from ..services.sandbox.demo import DemoParts
from ..services.usage.sync import SyncOptions, UsageSyncService

if TYPE_CHECKING:
    from .container import Container

log = logging.getLogger("meterbill")


class DeferredNotifier:
    """A `Notifier` that looks the real one up when a notice is recorded."""

    def __init__(self, notifier: Callable[[], Notifier]) -> None:
        self._notifier = notifier

    def enqueue(self, session: Session, notice: Notice) -> bool:
        return self._notifier().enqueue(session, notice)


def notifications(container: Container) -> NotificationService:
    """The outbox: rendering, SMTP when SMTP_URL is set, the admin alert webhook, and the
    signed tenant.access_changed events when ACCESS_WEBHOOK_URL is set."""
    from ..adapters.email_templates import EmailRenderer
    from ..adapters.mailer import AlertWebhook, SmtpConfig, SmtpMailer
    from ..services.notifications.outbox import NotificationSender, OutboxNotifier

    settings = container.settings
    mailer = (SmtpMailer(SmtpConfig.parse(settings.smtp_url), settings.email_from)
              if settings.smtp_url else None)
    hook_url = settings.alert_webhook_url
    alerts = AlertWebhook(hook_url.get_secret_value()) if hook_url is not None else None
    notifier = OutboxNotifier(
        EmailRenderer(settings.templates_dir), deliver_email=mailer is not None,
        admin_emails=settings.admin_email_list, alert_webhook=alerts is not None,
        links=container.portal_links, public_base_url=settings.public_url)
    if mailer is None:
        log.info("SMTP_URL is not set: emails are kept in the outbox as held "
                 "(`meterbill notifications list`), not sent")
    access = None
    if settings.access_webhook_url is not None and settings.access_webhook_secret is not None:
        from ..adapters.outgoing_webhooks import SignedWebhook

        access = SignedWebhook(settings.access_webhook_url.get_secret_value(),
                               settings.access_webhook_secret.get_secret_value())
    sender = NotificationSender(container.db, mailer, alerts, access_webhook=access,
                                max_attempts=settings.notification_max_attempts)
    return NotificationService(container.db, notifier, sender,
                               delivery="smtp" if mailer is not None else "held")


def dunning(container: Container) -> DunningService:
    return DunningService(container.db, container.dunning_policy, container.notifier,
                          container.access, on_notices=container.notifications.after_commit,
                          clock=container.stripe_time)


def sandbox_clock(container: Container) -> SandboxClock:
    """Sandbox mode's test clocks; `Conflict` with a Stripe key (real time cannot move)."""
    from ..adapters.stripe_test_clocks import StripeTestClocks
    from ..domain.errors import Conflict

    if container.settings.mode != "sandbox":
        raise Conflict("Time travel exists only in sandbox mode (no STRIPE_SECRET_KEY); with a "
                       "Stripe key, use test clocks in the Dashboard.", code="not_sandbox_mode")
    sandbox = container.sandbox

    def settle(timeout: float) -> bool:
        # The in-process sandbox's webhook sender; a sandbox on a port is not ours to watch.
        dispatcher = getattr(sandbox, "webhooks", None)
        return dispatcher is None or bool(dispatcher.wait_idle(timeout))

    return SandboxClock(StripeTestClocks(container.stripe_client), container.db, settle=settle)


def overdue_invoices(container: Container) -> OverdueInvoices:
    """The `overdue-invoices` job's service, on the container's dunning service and writer."""
    stripe = StripeEvents(container.gateway, live=container.settings.mode == "live")
    return OverdueInvoices(container.db, stripe, container.catalog, container.dunning_policy,
                           container.dunning, container.notifier,
                           on_notices=container.notifications.after_commit)


def entitlement(container: Container) -> EntitlementService:
    # One per container: it caches usage totals for ENTITLEMENT_USAGE_CACHE_SECONDS.
    totals = UsageTotals(lambda: container.usage_store,
                         container.settings.entitlement_usage_cache_seconds)
    return EntitlementService(container.db, container.catalog, container.dunning_policy,
                              totals)


def usage_store(container: Container) -> UsageStore:
    from ..adapters.usage import open_usage_store

    settings = container.settings
    return open_usage_store(settings.usage_store_url, clickhouse_source=settings.usage_source())


def usage_sync(container: Container) -> UsageSyncService:
    """The usage sync on Stripe's meters, paced and backing off on 429 as configured."""
    from ..adapters.stripe_meters import RequestPacer, RetryPolicy, StripeMeters

    settings = container.settings
    rate = settings.usage_sync_requests_per_second
    if container.sandbox is not None and "usage_sync_requests_per_second" not in (
            settings.model_fields_set):
        rate = 0.0  # the pace keeps under Stripe's rate limit; the in-process sandbox has none
    meters = StripeMeters(
        container.usage_stripe_client,  # STRIPE_USAGE_SYNC_TIMEOUT_SECONDS
        RetryPolicy(max_attempts=settings.usage_sync_max_attempts,
                    base_seconds=settings.usage_sync_backoff_seconds,
                    max_seconds=settings.usage_sync_backoff_max_seconds),
        RequestPacer(rate, burst=max(1.0, rate / 10)) if rate > 0 else None)
    return UsageSyncService(container.db, container.usage_store, meters, container.catalog,
                            SyncOptions(concurrency=settings.usage_sync_concurrency),
                            clock=container.stripe_time)


def portal(container: Container) -> PortalService:
    from ..adapters.stripe_portal import StripePortal

    settings = container.settings
    return_url = settings.portal_return_url or (settings.public_url + "/billing/portal/return")
    return PortalService(container.db, container.portal_links,
                         StripePortal(container.stripe_client), return_url=return_url)


def subscription_reconcile(container: Container) -> SubscriptionReconciler:
    """Subscription reconciliation on the container's gateway, writer of access and outbox."""
    rate = container.settings.reconcile_requests_per_second
    return SubscriptionReconciler(container.db, container.gateway, container.catalog,
                                  container.access, container.notifier,
                                  on_notices=container.notifications.after_commit,
                                  pace=RequestPacer(rate).acquire if rate > 0 else None)


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


def _invoice_drafts(container: Container, gateway: StripeGateway) -> StripeInvoiceDrafts:
    from ..services.billing.catalog_sync import PLAN_METADATA_KEY

    return StripeInvoiceDrafts(gateway, plan_metadata_key=PLAN_METADATA_KEY)


def invoice_verifier(container: Container) -> InvoiceVerifier:
    """Invoice verification for the webhook handlers: Stripe through their gateway (its short
    timeout), the usage store opened when the first draft is checked."""
    from ..domain.invoice_check import ReviewRules
    from ..services.invoices.verify import VerifyOptions

    s = container.settings
    rules = ReviewRules(first_invoice=s.invoice_hold_first,
                        usage_multiple=s.invoice_hold_usage_multiple,
                        amount_above_cents=s.invoice_hold_amount_above_cents,
                        proration=s.invoice_hold_proration,
                        credit_balance=s.invoice_hold_credit_balance)
    return InvoiceVerifier(container.db, _invoice_drafts(container, container.webhook_gateway),
                           lambda: container.usage_store, container.catalog, container.notifier,
                           VerifyOptions(s.invoice_tolerance_cents, rules))


def invoice_review(container: Container) -> InvoiceReviewService:
    """The review queue and its actions (API, CLI, the console)."""
    hours = container.settings.invoice_review_remind_hours
    return InvoiceReviewService(container.db, _invoice_drafts(container, container.gateway),
                                container.notifier,
                                remind_after=timedelta(hours=hours) if hours > 0 else None)


def invoices(container: Container) -> InvoiceService:
    """A customer's invoices for the console and the billing page."""
    return InvoiceService(container.db, StripeInvoices(container.gateway))
def demo_parts(container: Container) -> DemoParts:
    """What `meterbill demo` (and `make run` on a new database) drives: meterbill's services,
    a cancel made in Stripe itself, and the usage store's and the ledger's totals."""
    from datetime import datetime, timedelta

    from ..adapters.db.usage_ledger import UsageLedgerRepository

    metric = container.catalog.meter.event_name

    def cancel_in_stripe(subscription_id: str) -> None:
        container.gateway.cancel_subscription(subscription_id,
                                              idempotency_key=f"demo-cancel:{subscription_id}")

    def usage_totals(tenant_ids: list[str], since: datetime) -> tuple[int, int]:
        until = since + timedelta(days=400)
        store = container.usage_store
        stored = sum(store.total(t, metric, since, until) for t in tenant_ids)
        with container.db.session() as session:
            ledger = UsageLedgerRepository(session)
            reported = sum(ledger.reported(t, metric, since, until) for t in tenant_ids)
        return stored, reported

    return DemoParts(clock=container.sandbox_clock, customers=container.customers,
                     subscriptions=container.subscriptions, tenants=container.tenants,
                     ingest=lambda: container.usage_ingest,
                     sync=lambda since: container.usage_sync.sync(since=since),
                     cancel_in_stripe=cancel_in_stripe, usage_totals=usage_totals)
