"""Queries over the tables, one repository per aggregate, each bound to a session.

Writes that must be safe under concurrency are single statements the database arbitrates:
insert-or-ignore on a unique key, and compare-and-set updates that report whether they won.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .models import Subscription, Tenant, utcnow
from .statements import rowcount, session_insert

# Ids per `IN (...)` list: well under every database's bound-parameter limit.
_IN_CHUNK = 500


def _insert_ignoring_conflicts(session: Session, table: Any, values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when this call inserted the row."""
    statement = session_insert(session, table).values(**values).on_conflict_do_nothing()
    # psycopg reports rowcount -1 for ON CONFLICT DO NOTHING; RETURNING says it on both databases.
    result = session.execute(statement.returning(*table.primary_key.columns))
    return result.first() is not None


class TenantRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, tenant_id: str, *, for_update: bool = False) -> Tenant | None:
        query = select(Tenant).where(Tenant.tenant_id == tenant_id)
        if for_update:
            query = query.with_for_update()  # a no-op on SQLite, which locks the whole file
        return self.session.scalars(query).one_or_none()

    def by_customer(self, customer_id: str) -> Tenant | None:
        query = select(Tenant).where(Tenant.stripe_customer_id == customer_id)
        return self.session.scalars(query).one_or_none()

    def all(self) -> Sequence[Tenant]:
        return self.session.scalars(select(Tenant).order_by(Tenant.created_at, Tenant.id)).all()

    def existing_ids(self, tenant_ids: Iterable[str]) -> set[str]:
        """Which of `tenant_ids` exist, in one query per 500 ids."""
        wanted = sorted(set(tenant_ids))
        found: set[str] = set()
        for first in range(0, len(wanted), _IN_CHUNK):
            part = wanted[first:first + _IN_CHUNK]
            found.update(self.session.scalars(select(Tenant.tenant_id)
                                              .where(Tenant.tenant_id.in_(part))))
        return found

    def claim_customer(self, tenant_id: str, email: str | None, name: str | None,
                       customer_id: str) -> None:
        """Record `customer_id` for the tenant unless it already has one (race-safe)."""
        now = utcnow()
        _insert_ignoring_conflicts(self.session, Tenant.__table__, {
            "tenant_id": tenant_id, "email": email, "name": name,
            "stripe_customer_id": customer_id, "billing_status": "none",
            "payment_failures": 0, "rate_limit_multiplier": 0.0, "soft_suspended": False,
            "api_access_enabled": False, "subscription_seq": 0,
            "created_at": now, "updated_at": now,
        })
        # A row made earlier without a customer (or by a racing insert) gets ours only if empty.
        self.session.execute(
            update(Tenant)
            .where(Tenant.tenant_id == tenant_id, Tenant.stripe_customer_id.is_(None))
            .values(stripe_customer_id=customer_id, updated_at=now)
        )
        self.session.expire_all()

    def lock(self, tenant: Tenant) -> None:
        """Lock the tenant's row until commit (PostgreSQL: the row; SQLite: the database's
        write lock) and move its `state_version` on, so a webhook handler that read it before
        runs again; then reload it as the previous holder of the lock left it."""
        self.session.execute(update(Tenant).where(Tenant.id == tenant.id)
                             .values(state_version=Tenant.state_version + 1)
                             .execution_options(synchronize_session=False))
        self.session.refresh(tenant)

    def advance_state_version(self, row_id: int, expected: int) -> bool:
        """Compare-and-set: bump the tenant's `state_version` if it is still `expected`
        (which locks the row until commit)."""
        result = self.session.execute(
            update(Tenant).where(Tenant.id == row_id, Tenant.state_version == expected)
            .values(state_version=expected + 1)
            .execution_options(synchronize_session=False))
        return rowcount(result) == 1

    def state_version(self, row_id: int) -> int | None:
        return self.session.scalar(select(Tenant.state_version).where(Tenant.id == row_id))

    def advance_subscription_seq(self, tenant_id: str, expected: int) -> bool:
        """Compare-and-set: bump the tenant's subscription counter if it is still `expected`."""
        result = self.session.execute(
            update(Tenant)
            .where(Tenant.tenant_id == tenant_id, Tenant.subscription_seq == expected)
            .values(subscription_seq=expected + 1, updated_at=utcnow())
        )
        self.session.expire_all()
        return rowcount(result) == 1


class SubscriptionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, subscription_id: str) -> Subscription | None:
        return self.session.get(Subscription, subscription_id)

    def add(self, row: Subscription) -> Subscription:
        self.session.add(row)
        return row

    def for_tenant(self, tenant_id: str) -> Sequence[Subscription]:
        query = (select(Subscription).where(Subscription.tenant_id == tenant_id)
                 .order_by(Subscription.created_at))
        return self.session.scalars(query).all()

    def with_pending_plan(self) -> Sequence[Subscription]:
        query = select(Subscription).where(Subscription.pending_plan.is_not(None))
        return self.session.scalars(query).all()
