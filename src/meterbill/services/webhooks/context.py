"""What a handler gets: the event, one database session, and the seams it may call.

A handler runs inside ONE transaction that also marks the inbox row handled: either all of its
database changes and the handled mark commit, or none do (a crash, an error, a lost lease), and
the next attempt starts from a clean slate. Handlers read the current state of the object from
Stripe before deciding, never the event's copy alone.

Handlers of one tenant must not commit decisions out of order: each re-reads Stripe and then
writes, and an interleaved one could write an older read last. They take turns optimistically:
`tenant_for_customer` notes the tenant's `state_version` without locking, the handler asks
Stripe, then calls `claim` right before its first write (the dunning service does, and `notice`
does), which bumps the version only if it is unchanged, else raises `StaleTenant` and the
processor runs the handler again on a fresh transaction (a fresh Stripe read). `confirm`, run by
the processor before the handled mark, claims for a handler that wrote nothing, or wrote
without claiming. Claiming before the first write makes every handler lock its tenant's row
before any other, the order the pessimistic lock had, so two handlers cannot deadlock.
Nothing is locked while Stripe answers, which on SQLite would hold the whole database's write
lock for the length of an HTTP call, stalling every other handler and the webhook endpoint's
inserts. After repeated conflicts the processor's last run locks the tenant before Stripe is
read instead (`lock_first`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from ...adapters.db.models import Tenant
from ...adapters.db.repositories import TenantRepository
from ...adapters.db.session import DbSession
from ...domain.plans import Catalog
from ...ports.notify import MissingFacts, Notice, Notifier
from ...ports.stripe import SubscriptionRecord
from ...ports.webhooks import InvoiceRecord, StripeEventsPort
from ..errors import StaleTenant, UnknownCustomer


@dataclass(frozen=True)
class InboxEvent:
    row_id: int
    id: str
    type: str
    created: datetime
    data: dict[str, Any]  # the whole event envelope, parsed

    @property
    def object(self) -> dict[str, Any]:
        obj = (self.data.get("data") or {}).get("object") or {}
        return obj if isinstance(obj, dict) else {}

    @property
    def object_id(self) -> str:
        return str(self.object.get("id") or "")

    @property
    def customer_id(self) -> str:
        customer = self.object.get("customer")
        if isinstance(customer, dict):
            customer = customer.get("id")
        return customer if isinstance(customer, str) else ""

    @classmethod
    def parse(cls, row_id: int, payload: str) -> InboxEvent:
        data = json.loads(payload)
        return cls(row_id=row_id, id=data["id"], type=data["type"],
                   created=datetime.fromtimestamp(int(data["created"]), UTC), data=data)


@dataclass
class HandlerContext:
    session: DbSession
    stripe: StripeEventsPort
    catalog: Catalog
    dunning: DunningPort
    usage: UsageFlushPort
    notes: list[str] = field(default_factory=list)
    invoices: InvoiceCheckPort = field(default_factory=lambda: NoInvoiceCheck())
    # Records notices in this transaction (the outbox); the processor sends them after commit.
    notifier: Notifier | None = None
    # Lock every tenant before reading Stripe (the processor's last try after conflicts).
    lock_first: bool = False
    # Tenant row id -> the state_version this handler's decision is based on.
    seen_versions: dict[int, int] = field(default_factory=dict)
    _claimed: set[int] = field(default_factory=set)  # tenants whose version this one bumped

    def tenant_for_customer(self, customer_id: str) -> Tenant:
        """The tenant of a Stripe customer; `UnknownCustomer` when no tenant has it. Call it
        before reading Stripe: its version is what `claim` (or `confirm`) checks.

        With `lock_first` the row is locked at once for the rest of the transaction
        (PostgreSQL: the row; SQLite: the database's write lock)."""
        tenant = TenantRepository(self.session).by_customer(customer_id) if customer_id else None
        if tenant is None:
            raise UnknownCustomer(customer_id)
        if tenant.id in self.seen_versions:
            return tenant
        if self.lock_first:
            TenantRepository(self.session).lock(tenant)
            self._claimed.add(tenant.id)
        self.seen_versions[tenant.id] = tenant.state_version
        return tenant

    def confirm(self) -> None:
        """Commit-time check for a handler that wrote nothing yet, or read a tenant after its
        first write: every tenant it decided about is as it read it. The claim goes before
        the handler's pending writes reach the database (the tenant row is locked first)."""
        self.claim()
        TenantRepository(self.session).flush()

    def claim(self) -> None:
        """Call right before the first write: bump each seen tenant's version if it is still
        the one read (this takes the row's lock until commit), else `StaleTenant`: another
        handler decided meanwhile. Idempotent."""
        repo = TenantRepository(self.session)  # pending ORM writes follow the claim
        for tenant_id, seen in self.seen_versions.items():
            if tenant_id in self._claimed:
                continue
            if not repo.advance_state_version(tenant_id, seen):
                raise StaleTenant(f"tenant row {tenant_id} changed while this handler ran")
            self._claimed.add(tenant_id)

    def stale(self, session: DbSession) -> bool:
        """Whether another transaction changed a tenant this handler read (asked after a
        failure, on a new session: a unique-key clash is then a conflict, not a bug)."""
        repo = TenantRepository(session)
        for tenant_id, seen in self.seen_versions.items():
            current = repo.state_version(tenant_id)
            if current is not None and current != seen:
                return True
        return False

    def notice(self, *, kind: str, dedupe_key: str, detail: str, tenant_id: str | None,
               event_id: str | None, facts: Mapping[str, Any] | None = None,
               to_admin: bool = False) -> bool:
        """Record a notice once per `dedupe_key` (False: it was there); it is rendered now and
        sent after this handler's transaction commits.

        Without `facts`, a kind whose templates need facts is recorded for the console only
        (never emailed); with them, a missing fact is the caller's error (`MissingFacts`)."""
        from ..notifications.outbox import RecordOnlyNotifier

        notice = Notice(kind=kind, dedupe_key=dedupe_key, tenant_id=tenant_id, detail=detail,
                        facts=dict(facts or {}), event_id=event_id, to_admin=to_admin)
        self.claim()  # a write: take this handler's turn first
        notifier = self.notifier or RecordOnlyNotifier()
        try:
            return notifier.enqueue(self.session, notice)
        except MissingFacts:
            if facts is not None:
                raise
            return RecordOnlyNotifier().enqueue(self.session, notice)

    def note(self, text: str) -> None:
        """Say what the handler did; stored on the inbox row for `meterbill webhooks show`."""
        self.notes.append(text)


# --- the seams handlers call: other services, not the outside world ---------------------------

class DunningPort(Protocol):
    """What payments, subscriptions and trials mean for the tenant (services/access/dunning.py).

    Called inside the handler's transaction with the tenant's row, after the objects were
    re-read from Stripe. It reads what else it needs from Stripe, then calls `ctx.claim()`
    before its first write: the subscription copy, the tenant's access, timeline entries and
    notices commit together with the event's handled mark. Each returns a note of what it
    did."""

    def on_invoice(self, ctx: HandlerContext, event: InboxEvent, tenant: Tenant,
                   invoice: InvoiceRecord, subscription: SubscriptionRecord | None) -> str:
        """`invoice` decides the tenant's payment state (the subscription's latest one);
        `subscription` is its subscription as Stripe has it now."""
        ...

    def on_subscription(self, ctx: HandlerContext, event: InboxEvent, tenant: Tenant,
                        record: SubscriptionRecord) -> str:
        """A subscription of the tenant changed in Stripe: store it and decide again."""
        ...

    def on_trial_will_end(self, ctx: HandlerContext, event: InboxEvent, tenant: Tenant,
                          record: SubscriptionRecord) -> str:
        """The trial ends soon and no payment method is on file: remind the customer."""
        ...


class UsageFlushPort(Protocol):
    """Usage sync's part in invoicing (services/usage/sync.py)."""

    def flush(self, customer_id: str, period_end: datetime) -> None:
        """Report the period's remaining usage to Stripe before the draft invoice finalizes."""
        ...


class NoUsageFlush:
    """A `UsageFlushPort` for wirings without usage sync: nothing to flush."""

    def flush(self, customer_id: str, period_end: datetime) -> None:
        return None


class InvoiceCheckPort(Protocol):
    """Invoice verification's part in invoicing (services/invoices/verify.py)."""

    def check(self, invoice_id: str) -> str:
        """Verify a subscription's draft against meterbill's numbers, or hold it; a note."""
        ...

    def unchecked(self, invoice: InvoiceRecord, at: datetime) -> bool:
        """A renewal finalized before it was checked: recorded and alerted once."""
        ...


class NoInvoiceCheck:
    """An `InvoiceCheckPort` for wirings without verification (INVOICE_VERIFICATION=false)."""

    def check(self, invoice_id: str) -> str:
        return "invoice verification is off"

    def unchecked(self, invoice: InvoiceRecord, at: datetime) -> bool:
        return False
