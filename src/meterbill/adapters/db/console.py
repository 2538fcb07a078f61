"""The console's reads: tenant search, counts by state, and daily figures from the inbox.

The overview's charts come from the webhook inbox, which already holds every payment event and
when each event was received and handled; nothing else is recorded for them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, not_, or_, select
from sqlalchemy.orm import Session

from ...domain.tenant_states import STATES
from .inbox import WebhookEvent
from .models import Subscription, Tenant

_PLAIN = ("trialing", "active", "past_due", "canceled")


def _state_clause(state: str) -> Any:
    not_soft = or_(Tenant.soft_suspended.is_(False), Tenant.soft_suspended.is_(None))
    if state == "suspended":
        return Tenant.billing_status == "suspended"
    if state == "soft_suspended":
        return and_(Tenant.billing_status != "suspended", Tenant.soft_suspended.is_(True))
    if state == "other":
        return and_(not_soft, not_(Tenant.billing_status.in_((*_PLAIN, "suspended"))))
    return and_(not_soft, Tenant.billing_status == state)


@dataclass(frozen=True)
class TenantPage:
    rows: Sequence[Tenant]
    total: int


@dataclass(frozen=True)
class InboxFact:
    """One stored event, as the charts read it (no payload: they need none)."""

    type: str
    created: datetime
    received_at: datetime
    handled_at: datetime | None


class ConsoleQueries:
    def __init__(self, session: Session) -> None:
        self.session = session

    def search_tenants(self, *, text: str | None, state: str | None, plan: str | None,
                       offset: int, limit: int) -> TenantPage:
        query = select(Tenant)
        if text:
            like = f"%{text.lower()}%"
            query = query.where(or_(func.lower(Tenant.tenant_id).like(like),
                                    func.lower(func.coalesce(Tenant.name, "")).like(like),
                                    func.lower(func.coalesce(Tenant.email, "")).like(like),
                                    Tenant.stripe_customer_id == text))
        if state:
            query = query.where(_state_clause(state))
        if plan:
            query = query.where(Tenant.current_plan == plan)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(query.order_by(Tenant.tenant_id)
                                    .offset(offset).limit(limit)).all()
        return TenantPage(rows, int(total))

    def tenants_by_state(self) -> dict[str, int]:
        counts = {state: 0 for state in STATES}
        for state in STATES:
            counts[state] = int(self.session.scalar(
                select(func.count()).select_from(Tenant).where(_state_clause(state))) or 0)
        return counts

    def billed_subscriptions(self, statuses: Sequence[str]) -> Sequence[Subscription]:
        """The current subscription of each tenant whose status is one of `statuses`."""
        query = (select(Subscription).join(Tenant, Tenant.stripe_subscription_id
                                           == Subscription.id)
                 .where(Subscription.status.in_(statuses)))
        return self.session.scalars(query).all()

    def inbox_since(self, since: datetime, limit: int = 200_000) -> list[InboxFact]:
        query = (select(WebhookEvent.type, WebhookEvent.created, WebhookEvent.received_at,
                        WebhookEvent.handled_at).where(WebhookEvent.received_at >= since)
                 .order_by(WebhookEvent.id).limit(limit))
        return [InboxFact(*row) for row in self.session.execute(query)]

    def payloads(self, type: str, created_since: datetime) -> list[str]:
        """The raw payloads of the events of one type created since a time."""
        query = select(WebhookEvent.payload).where(WebhookEvent.type == type,
                                                   WebhookEvent.created >= created_since)
        return list(self.session.scalars(query))

    def events_for_customer(self, customer_id: str, limit: int = 50) -> Sequence[WebhookEvent]:
        """Stored events whose payload names the customer (its id is quoted in the JSON)."""
        needle = json.dumps(customer_id)
        query = (select(WebhookEvent).where(WebhookEvent.payload.contains(needle))
                 .order_by(WebhookEvent.received_at.desc(), WebhookEvent.id.desc()))
        return self.session.scalars(query.limit(limit)).all()
