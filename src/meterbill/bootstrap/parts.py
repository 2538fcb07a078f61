"""How the container makes the parts it builds on first use (bootstrap/container.py): the
outbox with its senders, the dunning service, the entitlement answers, the usage store and
its sync on Stripe's meters, the billing portal. The operations, invoice and sandbox-mode parts
have modules of their own (`operations_parts`, `invoice_parts`, `sandbox_parts`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from ..adapters.stripe_events import StripeEvents
from ..ports.notify import Notice, Notifier
from ..ports.usage_store import UsageStore
from ..services.access.dunning import DunningService
from ..services.access.entitlement import EntitlementService, UsageTotals
from ..services.access.overdue import OverdueInvoices
from ..services.notifications.outbox import NotificationService
from ..services.notifications.portal_links import PortalService
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
