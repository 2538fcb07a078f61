"""The one place that picks concrete adapters and wires services together.

`build(settings)` makes a `Container`; nothing here runs at import time. Without a Stripe key
the gateway talks to an in-process `stripe_sandbox.Sandbox` (imported lazily, only here).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import stripe
from sqlalchemy.orm import Session

from .adapters.db.session import Database
from .adapters.local_secrets import LocalSecrets
from .adapters.stripe_gateway import API_VERSION, StripeGateway
from .config import Settings
from .domain.dunning import DunningPolicy, load_policy
from .domain.plans import Catalog, load_catalog
from .ports.notify import Notice, Notifier
from .ports.usage_store import UsageStore
from .services.catalog_sync import CatalogSyncService
from .services.customers import CustomerService
from .services.dunning import DunningService
from .services.entitlement import EntitlementService, UsageTotals
from .services.notifications import NotificationService
from .services.portal_links import PortalLinks, PortalService, derive_secret
from .services.subscriptions import SubscriptionPolicy, SubscriptionService
from .services.tenant_access import TenantAccessService
from .services.tenants import TenantService
from .services.usage_ingest import UsageIngestService
from .services.usage_reconcile import UsageReconciler
from .services.usage_sync import DeferredFlush, SyncOptions, UsageSyncService
from .services.views import CatalogChange
from .services.webhooks.context import UsageFlushPort

log = logging.getLogger("meterbill")

SANDBOX_KEY = "sk_test_sandbox"
# Beside the database: secrets a development set-up made for itself (adapters/local_secrets.py).
SECRETS_SUFFIX = ".secrets.json"
API_TOKEN_SECRET = "api_token"
LINK_KEY_SECRET = "link_signing_key"


@dataclass
class Container:
    settings: Settings
    db: Database
    gateway: StripeGateway
    catalog: Catalog
    customers: CustomerService
    subscriptions: SubscriptionService
    catalog_sync: CatalogSyncService
    tenants: TenantService
    sandbox: Any = None  # the stripe_sandbox.Sandbox in sandbox mode, else None
    stripe_client: stripe.StripeClient | None = field(default=None, repr=False)
    # Webhook intake, processor and workers, built on first use by webhooks_wiring.webhooks_for.
    webhooks: Any = field(default=None, repr=False)
    # The usage store opens on first use: a DuckDB file admits one process, so commands that
    # never touch usage must not take it.
    _usage_store: UsageStore | None = field(default=None, repr=False)
    _usage_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # The outbox, its renderer and senders; built on first use (see `_notifications`).
    _notifications: NotificationService | None = field(default=None, repr=False)
    _notifications_lock: Any = field(default_factory=threading.RLock, repr=False)
    _portal_links: PortalLinks | None = field(default=None, repr=False)
    # The dunning policy (DUNNING_POLICY_FILE, checked by `build`), its service and the
    # entitlement answers (one instance each: the entitlement caches usage totals).
    dunning_policy: DunningPolicy | None = field(default=None, repr=False)
    _dunning: DunningService | None = field(default=None, repr=False)
    _entitlement: EntitlementService | None = field(default=None, repr=False)
    _dunning_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # The one writer of tenants' access (services/tenant_access.py), shared by the services.
    access: TenantAccessService | None = field(default=None, repr=False)

    @property
    def dunning(self) -> DunningService:
        with self._dunning_lock:
            if self._dunning is None:
                policy = self.dunning_policy or load_policy(self.settings.dunning_policy_file)
                assert self.access is not None
                self._dunning = DunningService(self.db, policy, self.notifier, self.access,
                                               on_notices=self.notifications.after_commit)
            return self._dunning

    @property
    def entitlement(self) -> EntitlementService:
        with self._dunning_lock:
            if self._entitlement is None:
                totals = UsageTotals(lambda: self.usage_store,
                                     self.settings.entitlement_usage_cache_seconds)
                policy = self.dunning_policy or load_policy(self.settings.dunning_policy_file)
                self._entitlement = EntitlementService(self.db, self.catalog, policy, totals)
            return self._entitlement
    # Usage sync to Stripe's meters, built on first use (it opens the usage store).
    _usage_sync: Any = field(default=None, repr=False)
    # Set by a CLI command while `meterbill serve` holds the usage store: flushes go there.
    remote_usage_flush: UsageFlushPort | None = field(default=None, repr=False)

    @property
    def notifications(self) -> NotificationService:
        with self._notifications_lock:
            if self._notifications is None:
                self._notifications = _notifications(self)
            return self._notifications

    @property
    def notifier(self) -> Notifier:
        return self.notifications.notifier

    @property
    def portal_links(self) -> PortalLinks:
        with self._notifications_lock:
            if self._portal_links is None:
                self._portal_links = portal_links(self.settings)
            return self._portal_links

    @property
    def portal(self) -> PortalService:
        """Opens the Stripe billing portal for the signed links in emails."""
        from .adapters.stripe_portal import StripePortal

        assert self.stripe_client is not None
        settings = self.settings
        return_url = settings.portal_return_url or (
            settings.public_url + "/billing/portal/return")
        return PortalService(self.db, self.portal_links, StripePortal(self.stripe_client),
                             return_url=return_url)

    @property
    def usage_store(self) -> UsageStore:
        with self._usage_lock:
            if self._usage_store is None:
                from .adapters.usage import open_usage_store

                self._usage_store = open_usage_store(
                    self.settings.usage_store_url,
                    clickhouse_source=self.settings.usage_source())
            return self._usage_store

    @property
    def usage_ingest(self) -> UsageIngestService:
        return UsageIngestService(self.usage_store, self.tenants.existing)

    @property
    def usage_sync(self) -> UsageSyncService:
        if self._usage_sync is None:
            made = _usage_sync(self)  # outside the lock: it takes the usage store's
            with self._usage_lock:
                if self._usage_sync is None:  # one service, hence one pacer, per container
                    self._usage_sync = made
        sync: UsageSyncService = self._usage_sync
        return sync

    @property
    def usage_reconcile(self) -> UsageReconciler:
        sync = self.usage_sync
        return UsageReconciler(self.db, sync.store, sync.meters, self.catalog,
                               sync.options, clock=sync.clock)

    @property
    def usage_flush(self) -> UsageFlushPort:
        """The webhooks' `UsageFlushPort`: builds the sync only when an invoice needs it."""
        if self.remote_usage_flush is not None:
            return self.remote_usage_flush
        return DeferredFlush(lambda: self.usage_sync)

    @property
    def mode(self) -> str:
        return self.settings.mode

    def upgrade_db(self) -> None:
        """Run Alembic migrations up to head on this container's database."""
        from .adapters.db.migrate import upgrade

        upgrade(self.db.engine)

    def prepare_sandbox(self) -> list[CatalogChange]:
        """Sandbox mode: migrate and sync the catalog so the service is usable at once.

        Returns the catalog sync's changes (unchanged items included)."""
        self.upgrade_db()
        return self.catalog_sync.sync()

    def stripe_health(self) -> None:
        """One cheap Stripe call; raises `StripeFailure` (with Stripe's request id) on error."""
        self.gateway.ping()

    def close(self) -> None:
        if self.webhooks is not None:
            self.webhooks.close()
        with self._usage_lock:
            if self._usage_store is not None:
                self._usage_store.close()
                self._usage_store = None
        self.db.dispose()


def build(settings: Settings | None = None, *, stripe_http_client: Any = None) -> Container:
    settings = settings or Settings()
    sandbox = None
    http_client = stripe_http_client
    if settings.stripe_secret_key is None:
        api_key = SANDBOX_KEY
        if http_client is None and settings.stripe_api_base is None:
            sandbox, http_client = _in_process_sandbox()
            log.warning("SANDBOX MODE: no STRIPE_SECRET_KEY, using the in-process Stripe "
                        "sandbox; no real money moves")
        else:
            # A caller's sandbox client (tests) exposes its Sandbox; a remote sandbox does not.
            sandbox = getattr(http_client, "sandbox", None)
    else:
        api_key = settings.stripe_secret_key.get_secret_value()
    client = _stripe_client(settings, api_key, http_client)
    catalog = load_catalog(settings.plans_file)
    dunning_policy = load_policy(settings.dunning_policy_file)
    db = Database(settings.database_url)
    gateway = StripeGateway(client)
    policy = SubscriptionPolicy(
        require_payment_method=settings.require_payment_method,
        downgrade_at_period_end=settings.downgrade_at_period_end,
        upgrade_proration=settings.upgrade_proration,
        default_trial_days=settings.default_trial_days,
    )
    # The outbox is built on first use: the access writer finds it when it records a notice.
    access = TenantAccessService(
        dunning_policy, DeferredNotifier(lambda: container.notifier),
        access_events=settings.access_webhook_url is not None)  # tenant.access_changed
    container = Container(
        settings=settings,
        db=db,
        gateway=gateway,
        catalog=catalog,
        customers=CustomerService(db, gateway),
        subscriptions=SubscriptionService(
            db, gateway, catalog, policy, access=access,
            on_notices=lambda ids: container.notifications.after_commit(ids)),
        catalog_sync=CatalogSyncService(gateway, catalog),
        tenants=TenantService(db, gateway, access),
        sandbox=sandbox,
        stripe_client=client,
        dunning_policy=dunning_policy,
        access=access,
    )
    return container


class DeferredNotifier:
    """A `Notifier` that looks the real one up when a notice is recorded."""

    def __init__(self, notifier: Callable[[], Notifier]) -> None:
        self._notifier = notifier

    def enqueue(self, session: Session, notice: Notice) -> bool:
        return self._notifier().enqueue(session, notice)


def _stripe_client(settings: Settings, api_key: str, http_client: Any) -> stripe.StripeClient:
    kwargs: dict[str, Any] = {
        "stripe_version": API_VERSION,
        "max_network_retries": settings.stripe_max_network_retries,
    }
    if settings.stripe_api_base:
        base = settings.stripe_api_base.rstrip("/")
        kwargs["base_addresses"] = {"api": base, "meter_events": base}
    if http_client is not None:
        kwargs["http_client"] = http_client
    return stripe.StripeClient(api_key, **kwargs)


def _in_process_sandbox() -> tuple[Any, Any]:
    # Imported here so meterbill never loads the sandbox unless sandbox mode asks for it.
    from stripe_sandbox import Sandbox, SandboxHTTPClient

    sandbox = Sandbox()
    return sandbox, SandboxHTTPClient(sandbox)


def local_secrets(settings: Settings) -> LocalSecrets:
    """The secrets file beside the database (`var/meterbill.secrets.json`)."""
    return LocalSecrets(settings.state_file(SECRETS_SUFFIX))


def keeps_local_secrets(settings: Settings) -> bool:
    """Development and sandbox set-ups make the secrets they lack and keep them locally."""
    return settings.environment == "development" or settings.mode == "sandbox"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def portal_links(settings: Settings) -> PortalLinks:
    """Signed billing-portal links: LINK_SIGNING_SECRET, else derived from the API token, else
    (development, sandbox) a key kept in the local secrets file, so that a link made by any
    command works in the server."""
    from datetime import timedelta

    secret = settings.link_signing_secret or settings.meterbill_api_token
    ttl = timedelta(days=settings.portal_link_days)
    if secret is not None:
        return PortalLinks(derive_secret(secret.get_secret_value()), settings.public_url, ttl)
    if keeps_local_secrets(settings):
        kept = local_secrets(settings).get_or_create(LINK_KEY_SECRET, new_secret)
        return PortalLinks(derive_secret(kept), settings.public_url, ttl)
    # Production without either secret (the API itself refuses to start): links made now stop
    # working when the process ends, which is said when one is made.
    return PortalLinks(secrets.token_bytes(32), settings.public_url, ttl, ephemeral=True)


def _notifications(container: Container) -> NotificationService:
    """The outbox: rendering, SMTP when SMTP_URL is set, the admin alert webhook."""
    from .adapters.email_templates import EmailRenderer
    from .adapters.mailer import AlertWebhook, SmtpConfig, SmtpMailer
    from .services.notifications import NotificationSender, OutboxNotifier

    settings = container.settings
    mailer = (SmtpMailer(SmtpConfig.parse(settings.smtp_url), settings.email_from)
              if settings.smtp_url else None)
    hook_url = settings.alert_webhook_url
    alerts = AlertWebhook(hook_url.get_secret_value()) if hook_url is not None else None
    links = container.portal_links
    notifier = OutboxNotifier(
        EmailRenderer(settings.templates_dir), deliver_email=mailer is not None,
        admin_emails=settings.admin_email_list, alert_webhook=alerts is not None,
        links=links, public_base_url=settings.public_url)
    if mailer is None:
        log.info("SMTP_URL is not set: emails are kept in the outbox as held "
                 "(`meterbill notifications list`), not sent")
    access = None
    if settings.access_webhook_url is not None and settings.access_webhook_secret is not None:
        from .adapters.outgoing_webhooks import SignedWebhook

        access = SignedWebhook(settings.access_webhook_url.get_secret_value(),
                               settings.access_webhook_secret.get_secret_value())
    sender = NotificationSender(container.db, mailer, alerts, access_webhook=access,
                                max_attempts=settings.notification_max_attempts)
    return NotificationService(container.db, notifier, sender,
                               delivery="smtp" if mailer is not None else "held")


def _usage_sync(container: Container) -> UsageSyncService:
    """The usage sync on Stripe's meters, paced and backing off on 429 as configured."""
    from .adapters.stripe_meters import RequestPacer, RetryPolicy, StripeMeters

    settings = container.settings
    assert container.stripe_client is not None
    rate = settings.usage_sync_requests_per_second
    meters = StripeMeters(
        container.stripe_client,
        RetryPolicy(max_attempts=settings.usage_sync_max_attempts,
                    base_seconds=settings.usage_sync_backoff_seconds,
                    max_seconds=settings.usage_sync_backoff_max_seconds),
        RequestPacer(rate, burst=max(1.0, rate / 10)) if rate > 0 else None)
    return UsageSyncService(container.db, container.usage_store, meters, container.catalog,
                            SyncOptions(concurrency=settings.usage_sync_concurrency))
