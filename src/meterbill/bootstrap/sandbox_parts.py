"""How the container makes sandbox mode's parts: the test clocks moved together and the
seeded demo month (docs/sandbox.md)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..services.sandbox.clock import SandboxClock
from ..services.sandbox.demo import DemoParts

if TYPE_CHECKING:
    from .container import Container

log = logging.getLogger("meterbill")


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
