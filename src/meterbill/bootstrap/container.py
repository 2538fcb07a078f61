"""The application's parts, built from `Settings` by `build`; nothing runs at import time.

Parts that every command needs are made by `build`. The others are made on first use, once per
container (`_Part`): a DuckDB usage file admits one process, so a command that never touches
usage must not open it, and the outbox, the dunning service and the usage sync are only as
costly as their first caller.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar, overload

import stripe

from ..adapters.db.migrate import Migrations, SchemaStatus
from ..adapters.db.session import Database, DatabaseTimeouts
from ..adapters.metrics import process_metrics
from ..adapters.stripe_gateway import StripeGateway
from ..adapters.stripe_usage_repair import StripeUsageRepair
from ..config import Settings
from ..domain.clock import Clock, utcnow
from ..domain.dunning import DunningPolicy, load_policy
from ..domain.plans import Catalog, load_catalog
from ..ports.metrics import install as install_metrics
from ..ports.notify import Notifier
from ..ports.usage_store import UsageStore
from ..services.access.dunning import DunningService
from ..services.access.entitlement import EntitlementService
from ..services.access.overdue import OverdueInvoices
from ..services.access.writer import TenantAccessService
from ..services.billing.catalog_sync import CatalogSyncService
from ..services.billing.customers import CustomerService
from ..services.billing.invoices import InvoiceService
from ..services.billing.subscriptions import SubscriptionPolicy, SubscriptionService
from ..services.billing.tenants import TenantService
from ..services.invoices.review import InvoiceReviewService
from ..services.invoices.verify import InvoiceVerifier
from ..services.jobs import JobRunner
from ..services.notifications.outbox import NotificationService
from ..services.notifications.portal_links import PortalLinks, PortalService
from ..services.operations.readiness import Readiness
from ..services.operations.slo import SloService
from ..services.reconcile.subscriptions import SubscriptionReconciler
from ..services.sandbox.clock import SandboxClock
from ..services.sandbox.demo import DemoParts
from ..services.usage.ingest import KnownTenants, UsageIngestService
from ..services.usage.reconcile import UsageReconciler
from ..services.usage.repair import UsageRepair
from ..services.usage.sync import DeferredFlush, UsageSyncService
from ..services.views import CatalogChange
from ..services.webhooks.context import InvoiceCheckPort, NoInvoiceCheck, UsageFlushPort
from . import invoice_parts, operations_parts, parts, sandbox_parts
from .jobs import schedule_table
from .local import portal_links
from .stripe import StripeConnection, connect
from .webhooks import WebhookComponents, build_webhooks

if TYPE_CHECKING:
    from stripe_sandbox import Sandbox

log = logging.getLogger("meterbill")

T = TypeVar("T")


class _Part(Generic[T]):
    """A part made on first use by `make(container)`, once, under the container's lock."""

    def __init__(self, make: Callable[[Container], T]) -> None:
        self.make = make
        self.slot = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_part_{name}"

    @overload
    def __get__(self, container: None, owner: type) -> _Part[T]: ...
    @overload
    def __get__(self, container: Container, owner: type) -> T: ...

    def __get__(self, container: Container | None, owner: type) -> T | _Part[T]:
        if container is None:
            return self
        made: T | None = container.__dict__.get(self.slot)
        if made is None:
            with container.lock:
                made = container.__dict__.get(self.slot)
                if made is None:
                    made = self.make(container)
                    container.__dict__[self.slot] = made
        return made


@dataclass(eq=False)
class Container:
    settings: Settings
    db: Database
    stripe_client: stripe.StripeClient = field(repr=False)
    gateway: StripeGateway
    catalog: Catalog
    dunning_policy: DunningPolicy
    access: TenantAccessService  # the one writer of tenants' access
    customers: CustomerService
    subscriptions: SubscriptionService
    catalog_sync: CatalogSyncService
    tenants: TenantService
    sandbox: Sandbox | None = None  # the in-process Stripe sandbox in sandbox mode
    # Webhook intake, processor and workers (`webhook_components()`; tests set their own).
    webhooks: WebhookComponents | None = field(default=None, repr=False)
    # Set by a CLI command while `meterbill serve` holds the usage store: flushes go there.
    remote_usage_flush: UsageFlushPort | None = field(default=None, repr=False)
    # The shipped migrations: their head is read once per container, the database's on demand.
    migrations: Migrations = field(default_factory=Migrations, repr=False)
    # How each path's Stripe client is made (its own HTTP timeout): `webhook_stripe_client`,
    # `usage_stripe_client`. None (a container made by hand) = they share `stripe_client`.
    stripe_connection: StripeConnection | None = field(default=None, repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    notifications: ClassVar[_Part[NotificationService]] = _Part(parts.notifications)
    portal_links: ClassVar[_Part[PortalLinks]] = _Part(lambda c: portal_links(c.settings))
    dunning: ClassVar[_Part[DunningService]] = _Part(parts.dunning)
    entitlement: ClassVar[_Part[EntitlementService]] = _Part(parts.entitlement)
    usage_store: ClassVar[_Part[UsageStore]] = _Part(parts.usage_store)
    # Tenant ids found by ingestion, remembered across requests (tenants are never deleted).
    known_tenants: ClassVar[_Part[KnownTenants]] = _Part(lambda c: KnownTenants(c.tenants.existing))
    # One usage sync, hence one request pacer, per container.
    usage_sync: ClassVar[_Part[UsageSyncService]] = _Part(parts.usage_sync)
    # The SLOs, their states and alerts, and the gauges /metrics reads from the database.
    slo_status: ClassVar[_Part[SloService]] = _Part(operations_parts.slo_status)
    # /ready's checks (it keeps a good Stripe answer for a while).
    readiness: ClassVar[_Part[Readiness]] = _Part(operations_parts.readiness)
    jobs: ClassVar[_Part[JobRunner]] = _Part(lambda c: JobRunner(c.db, schedule_table(c)))
    # Tenants' invoices as Stripe has them (the console and the customer billing page).
    invoices: ClassVar[_Part[InvoiceService]] = _Part(invoice_parts.invoices)
    # Sandbox mode's time travel (`Conflict` outside it).
    sandbox_clock: ClassVar[_Part[SandboxClock]] = _Part(sandbox_parts.sandbox_clock)
    demo_parts: ClassVar[_Part[DemoParts]] = _Part(sandbox_parts.demo_parts)
    # Stripe for webhook handlers (a short timeout: the event is retried later) and for the
    # usage sync (a longer one), and the webhook handlers' gateway on it.
    webhook_stripe_client: ClassVar[_Part[stripe.StripeClient]] = _Part(
        lambda c: c.stripe_client_with(c.settings.stripe_webhook_timeout_seconds))
    usage_stripe_client: ClassVar[_Part[stripe.StripeClient]] = _Part(
        lambda c: c.stripe_client_with(c.settings.stripe_usage_sync_timeout_seconds))
    webhook_gateway: ClassVar[_Part[StripeGateway]] = _Part(
        lambda c: StripeGateway(c.webhook_stripe_client))
    # Invoice verification (the webhook handlers') and the review queue of held invoices.
    invoice_verifier: ClassVar[_Part[InvoiceVerifier]] = _Part(invoice_parts.invoice_verifier)
    invoice_review: ClassVar[_Part[InvoiceReviewService]] = _Part(invoice_parts.invoice_review)

    @property
    def notifier(self) -> Notifier:
        return self.notifications.notifier

    @property
    def portal(self) -> PortalService:
        """Opens the Stripe billing portal for the signed links in emails."""
        return parts.portal(self)

    @property
    def usage_ingest(self) -> UsageIngestService:
        return UsageIngestService(self.usage_store, self.known_tenants)

    @property
    def usage_reconcile(self) -> UsageReconciler:
        sync = self.usage_sync
        return UsageReconciler(self.db, sync.store, sync.meters, self.catalog,
                               sync.options, clock=sync.clock,
                               repairer=UsageRepair(self.db, sync.meters,
                                                    StripeUsageRepair(self.usage_stripe_client),
                                                    self.catalog, clock=sync.clock))

    @property
    def subscription_reconcile(self) -> SubscriptionReconciler:
        """Daily proof that our subscriptions and Stripe's agree (`meterbill reconcile`)."""
        return operations_parts.subscription_reconcile(self)

    @property
    def overdue_invoices(self) -> OverdueInvoices:
        """The later overdue steps of emailed invoices (the `overdue-invoices` job)."""
        return parts.overdue_invoices(self)

    @property
    def usage_flush(self) -> UsageFlushPort:
        """The webhooks' flush of a period's last usage: the running server's when a CLI
        command runs beside it, else this container's sync, built when an invoice needs it."""
        if self.remote_usage_flush is not None:
            return self.remote_usage_flush
        return DeferredFlush(lambda: self.usage_sync)

    @property
    def invoice_check(self) -> InvoiceCheckPort:
        """What `invoice.created` checks drafts with: nothing when INVOICE_VERIFICATION is off
        or a CLI command runs beside the server that holds the usage store (it checks)."""
        if not self.settings.invoice_verification or self.remote_usage_flush is not None:
            return NoInvoiceCheck()
        return self.invoice_verifier

    def stripe_client_with(self, timeout: float) -> stripe.StripeClient:
        """A Stripe client like the container's whose requests time out after `timeout` s."""
        if self.stripe_connection is None:
            return self.stripe_client
        return self.stripe_connection.client(timeout)

    @property
    def mode(self) -> str:
        return self.settings.mode

    @property
    def uses_test_clocks(self) -> bool:
        """Sandbox mode with SANDBOX_TEST_CLOCKS: customers sit on clocks meterbill moves."""
        return self.settings.mode == "sandbox" and self.settings.sandbox_test_clocks

    def stripe_time(self) -> datetime:
        """Stripe's time for what meterbill records and decides: the sandbox's test clocks'
        with SANDBOX_TEST_CLOCKS, else the real time."""
        return self.sandbox_clock.now() if self.uses_test_clocks else utcnow()

    def made(self, part: _Part[object]) -> bool:
        """Whether a part made on first use has been made (`Container.usage_store`)."""
        return part.slot in self.__dict__

    def webhook_components(self) -> WebhookComponents:
        """The container's webhook components, built on first use."""
        with self.lock:
            if self.webhooks is None:
                self.webhooks = build_webhooks(self)
            return self.webhooks

    def upgrade_db(self) -> None:
        """Run Alembic migrations up to head on this container's database."""
        self.migrations.upgrade(self.db.engine)

    def schema_status(self) -> SchemaStatus:
        """The database's schema revision against the code's head (one query)."""
        return self.migrations.status(self.db.engine)

    def prepare_sandbox(self) -> list[CatalogChange]:
        """Sandbox mode: migrate and sync the catalog so the service is usable at once.

        Returns the catalog sync's changes (unchanged items included)."""
        self.upgrade_db()
        return self.catalog_sync.sync()

    def stripe_health(self) -> None:
        """One cheap Stripe call; raises `StripeFailure` (with Stripe's request id) on error."""
        self.gateway.ping()

    def close(self) -> None:
        with self.lock:
            if self.webhooks is not None:
                self.webhooks.close()
                self.webhooks = None
            store = self.__dict__.pop(Container.usage_store.slot, None)
            if store is not None:
                store.close()
        self.db.dispose()


class _UsageFlushOnUse:
    """The container's usage flush, looked up when a plan change needs it (the usage store
    opens only then)."""

    def __init__(self, get: Callable[[], UsageFlushPort]) -> None:
        self.get = get

    def flush(self, customer_id: str, period_end: datetime) -> None:
        self.get().flush(customer_id, period_end)


def build(settings: Settings | None = None, *,
          stripe_http_client: stripe.HTTPClient | None = None) -> Container:
    settings = settings or Settings()
    install_metrics(process_metrics())  # prometheus-client's families are per process
    connection = connect(settings, stripe_http_client)
    client, sandbox = connection.client(settings.stripe_timeout_seconds), connection.sandbox
    catalog = load_catalog(settings.plans_file)
    dunning_policy = load_policy(settings.dunning_policy_file)
    db = Database(settings.database_url, timeouts=DatabaseTimeouts(
        connect_seconds=settings.database_connect_timeout_seconds,
        statement_seconds=settings.database_statement_timeout_seconds,
        keepalives_idle_seconds=settings.database_keepalives_idle_seconds,
        keepalives_interval_seconds=settings.database_keepalives_interval_seconds,
        keepalives_count=settings.database_keepalives_count,
        pool_seconds=settings.database_pool_timeout_seconds,
        sqlite_busy_seconds=settings.database_busy_timeout_seconds))
    gateway = StripeGateway(client)
    policy = SubscriptionPolicy(
        require_payment_method=settings.require_payment_method,
        downgrade_at_period_end=settings.downgrade_at_period_end,
        upgrade_proration=settings.upgrade_proration,
        default_trial_days=settings.default_trial_days,
    )
    # Stripe's time (a test clock's in sandbox mode), looked up when something is recorded.
    stripe_time: Clock = lambda: container.stripe_time()  # noqa: E731
    # The outbox is made on first use: the access writer finds it when it records a notice.
    access = TenantAccessService(
        dunning_policy, parts.DeferredNotifier(lambda: container.notifier), clock=stripe_time,
        access_events=settings.access_webhook_url is not None)  # tenant.access_changed
    container = Container(
        settings=settings,
        db=db,
        stripe_client=client,
        gateway=gateway,
        catalog=catalog,
        dunning_policy=dunning_policy,
        access=access,
        customers=CustomerService(db, gateway, test_clock_for=(
            (lambda tenant_id: container.sandbox_clock.clock_for(tenant_id))
            if settings.mode == "sandbox" and settings.sandbox_test_clocks else None)),
        subscriptions=SubscriptionService(
            db, gateway, catalog, policy, access=access, clock=stripe_time,
            on_notices=lambda ids: container.notifications.after_commit(ids),
            usage=_UsageFlushOnUse(lambda: container.usage_flush)),
        catalog_sync=CatalogSyncService(gateway, catalog),
        tenants=TenantService(db, gateway, access),
        sandbox=sandbox,
        stripe_connection=connection,
    )
    return container
