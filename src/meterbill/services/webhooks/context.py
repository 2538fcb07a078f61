"""What a handler gets: the event, one database session, and the seams it may call.

A handler runs inside ONE transaction that also marks the inbox row handled: either all of its
database changes and the handled mark commit, or none do (a crash, an error, a lost lease), and
the next attempt starts from a clean slate. Handlers read the current state of the object from
Stripe before deciding, never the event's copy alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from ...adapters.db.models import Tenant
from ...adapters.db.repositories import TenantRepository
from ...domain.plans import Catalog
from ..notify_ports import Notice, Notifier
from .ports import DunningPort, StripeEventsPort, UsageFlushPort


class UnknownCustomer(Exception):
    """The event names a Stripe customer no tenant has (yet): our own write may still be on its
    way, so the processor retries for a while, then parks the event."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(f"no tenant has Stripe customer {customer_id or '(none)'}")
        self.customer_id = customer_id


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
    session: Session
    stripe: StripeEventsPort
    catalog: Catalog
    dunning: DunningPort
    usage: UsageFlushPort
    notes: list[str] = field(default_factory=list)
    # Records notices in this transaction (the outbox); the processor sends them after commit.
    notifier: Notifier | None = None

    def tenant_for_customer(self, customer_id: str) -> Tenant:
        """The tenant of a Stripe customer, locked for the rest of the handler's transaction;
        `UnknownCustomer` when no tenant has it.

        Handlers of one tenant must take turns: each re-reads Stripe and then writes, and two
        interleaved ones could write an older read last (or insert the same row twice). A no-op
        UPDATE is the lock on both databases: PostgreSQL locks the row, SQLite takes its
        database write lock, each held until commit. Call it before reading Stripe.
        """
        tenant = TenantRepository(self.session).by_customer(customer_id) if customer_id else None
        if tenant is None:
            raise UnknownCustomer(customer_id)
        self.session.execute(
            update(Tenant).where(Tenant.id == tenant.id)
            .values(updated_at=Tenant.updated_at)
            .execution_options(synchronize_session=False))
        self.session.refresh(tenant)  # what the previous holder of the lock committed
        return tenant

    def notice(self, *, kind: str, dedupe_key: str, detail: str, tenant_id: str | None,
               event_id: str | None, facts: Mapping[str, Any] | None = None,
               to_admin: bool = False) -> bool:
        """Record a notice once per `dedupe_key` (False: it was there); it is rendered now and
        sent after this handler's transaction commits.

        Without `facts`, a kind whose templates need facts is recorded for the console only
        (never emailed); with them, a missing fact is the caller's error (`MissingFacts`)."""
        from ..notifications import MissingFacts, RecordOnlyNotifier

        notice = Notice(kind=kind, dedupe_key=dedupe_key, tenant_id=tenant_id, detail=detail,
                        facts=dict(facts or {}), event_id=event_id, to_admin=to_admin)
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
