"""The one place that picks concrete adapters and wires services together.

`build(settings)` makes a `Container`; nothing here runs at import time. Without a Stripe key
the gateway talks to an in-process `stripe_sandbox.Sandbox` (imported lazily, only here).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import stripe

from .adapters.db.session import Database
from .adapters.stripe_gateway import API_VERSION, StripeGateway
from .config import Settings
from .domain.plans import Catalog, load_catalog
from .services.catalog_sync import CatalogSyncService
from .services.customers import CustomerService
from .services.subscriptions import SubscriptionPolicy, SubscriptionService
from .services.tenants import TenantService
from .services.usage_ingest import UsageIngestService
from .services.usage_ports import UsageStore

log = logging.getLogger("meterbill")

SANDBOX_KEY = "sk_test_sandbox"


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
        return UsageIngestService(self.usage_store, self.tenants.exists)

    @property
    def mode(self) -> str:
        return self.settings.mode

    def upgrade_db(self) -> None:
        """Run Alembic migrations up to head on this container's database."""
        from .adapters.db.migrate import upgrade

        upgrade(self.db.engine)

    def prepare_sandbox(self) -> None:
        """Sandbox mode: migrate and sync the catalog so the service is usable at once."""
        self.upgrade_db()
        self.catalog_sync.sync()

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
    db = Database(settings.database_url)
    gateway = StripeGateway(client)
    policy = SubscriptionPolicy(
        require_payment_method=settings.require_payment_method,
        downgrade_at_period_end=settings.downgrade_at_period_end,
        upgrade_proration=settings.upgrade_proration,
        default_trial_days=settings.default_trial_days,
    )
    return Container(
        settings=settings,
        db=db,
        gateway=gateway,
        catalog=catalog,
        customers=CustomerService(db, gateway),
        subscriptions=SubscriptionService(db, gateway, catalog, policy),
        catalog_sync=CatalogSyncService(gateway, catalog),
        tenants=TenantService(db, gateway),
        sandbox=sandbox,
        stripe_client=client,
    )


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
