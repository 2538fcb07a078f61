"""Queries over the tenants and their subscriptions, one repository per aggregate, each bound to
a session; and the entitlement's read, which runs on a connection of its own.

Writes that must be safe under concurrency are single statements the database arbitrates:
insert-or-ignore on a unique key, and compare-and-set updates that report whether they won.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from ...domain.clock import utcnow
from .models import Subscription, Tenant
from .session import Database
from .statements import rowcount, session_insert
from .timeline import TimelineEntry

# Ids per `IN (...)` list: well under every database's bound-parameter limit.
_IN_CHUNK = 500


def _insert_ignoring_conflicts(session: Session, table: Any, values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when this call inserted the row."""
    statement = session_insert(session, table).values(**values).on_conflict_do_nothing()
    # psycopg reports rowcount -1 for ON CONFLICT DO NOTHING; RETURNING says it on both databases.
    result = session.execute(statement.returning(*table.primary_key.columns))
    return result.first() is not None


class _Repository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def flush(self) -> None:
        """Send the session's pending writes now, inside its transaction (column defaults are
        filled in, row locks taken), instead of at the next query or the commit."""
        self.session.flush()


@dataclass(frozen=True)
class MeteredTenant:
    """A tenant whose current subscription has a metered price: what usage sync reports and
    reconciliation checks."""

    tenant_id: str
    customer_id: str
    subscription_id: str
    status: str
    period_start: datetime | None
    period_end: datetime | None
    canceled_at: datetime | None
    ended_at: datetime | None = None

    @property
    def ended(self) -> datetime | None:
        """When a canceled subscription stopped billing usage: `ended_at`, not `canceled_at`,
        which for a cancellation at the period end is when it was asked for (rows stored before
        `ended_at` was kept fall back to it). None while it bills."""
        return (self.ended_at or self.canceled_at) if self.status == "canceled" else None


@dataclass(frozen=True)
class MeteringFacts:
    """What decides whether a tenant's usage can be reported (None: it has none)."""

    customer_id: str | None
    subscription_id: str | None
    overage_price_id: str | None
    status: str | None


class TenantRepository(_Repository):

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
        (which locks the row until commit). The session's pending ORM writes are not flushed
        first: they follow the claim, not precede it (services/webhooks/context.py)."""
        with self.session.no_autoflush:
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


    # --- usage sync and reconciliation: tenants with a metered subscription -------------------

    def tenant_id_for_customer(self, customer_id: str) -> str | None:
        return self.session.scalar(
            select(Tenant.tenant_id).where(Tenant.stripe_customer_id == customer_id))

    @staticmethod
    def _metered(statuses: Collection[str]) -> tuple[Any, ...]:
        return (Tenant.stripe_customer_id.is_not(None),
                Subscription.overage_price_id.is_not(None),
                Subscription.status.in_(statuses))

    def count_metered(self, statuses: Collection[str],
                      tenant_ids: Sequence[str] | None = None) -> int:
        """How many tenants `metered` would return."""
        query = (select(func.count()).select_from(Tenant)
                 .join(Subscription, Subscription.id == Tenant.stripe_subscription_id)
                 .where(*self._metered(statuses)))
        if tenant_ids is not None:
            query = query.where(Tenant.tenant_id.in_(tenant_ids))
        return int(self.session.scalar(query) or 0)

    def metered(self, statuses: Collection[str], *, tenant_ids: Sequence[str] | None = None,
                after: str | None = None, limit: int | None = None) -> list[MeteredTenant]:
        """Tenants with a Stripe customer whose current subscription has a metered price and
        one of `statuses`, by tenant id; `after` and `limit` page through them (keyset pages:
        no offset scans)."""
        query = (select(Tenant.tenant_id, Tenant.stripe_customer_id, Subscription.id,
                        Subscription.status, Subscription.current_period_start,
                        Subscription.current_period_end, Subscription.canceled_at,
                        Subscription.ended_at)
                 .join(Subscription, Subscription.id == Tenant.stripe_subscription_id)
                 .where(*self._metered(statuses))
                 .order_by(Tenant.tenant_id))
        if after is not None:
            query = query.where(Tenant.tenant_id > after)
        if tenant_ids is not None:
            query = query.where(Tenant.tenant_id.in_(tenant_ids))
        if limit is not None:
            query = query.limit(limit)
        return [MeteredTenant(row[0], str(row[1]), row[2], row[3], row[4], row[5], row[6],
                              row[7])
                for row in self.session.execute(query)]

    def metering_facts(self, tenant_ids: Sequence[str]) -> dict[str, MeteringFacts]:
        """For each of `tenant_ids` that exists: its customer and current subscription."""
        rows = self.session.execute(
            select(Tenant.tenant_id, Tenant.stripe_customer_id, Subscription.id,
                   Subscription.overage_price_id, Subscription.status)
            .outerjoin(Subscription, Subscription.id == Tenant.stripe_subscription_id)
            .where(Tenant.tenant_id.in_(tenant_ids))).all()
        return {row[0]: MeteringFacts(row[1], row[2], row[3], row[4]) for row in rows}


class SubscriptionRepository(_Repository):
    def get(self, subscription_id: str) -> Subscription | None:
        return self.session.get(Subscription, subscription_id)

    def add(self, row: Subscription) -> Subscription:
        self.session.add(row)
        return row

    def for_tenant(self, tenant_id: str) -> Sequence[Subscription]:
        query = (select(Subscription).where(Subscription.tenant_id == tenant_id)
                 .order_by(Subscription.created_at))
        return self.session.scalars(query).all()

    def next_period_end(self, after: datetime) -> datetime | None:
        """The soonest period or trial end after `after` of a subscription that renews."""
        ends = []
        for column in (Subscription.current_period_end, Subscription.trial_end):
            ends.append(self.session.scalar(
                select(func.min(column)).where(
                    Subscription.status.in_(("active", "trialing", "past_due")),
                    column > after)))
        found = [end for end in ends if end is not None]
        return min(found) if found else None

    def needing_attention(self, status: str) -> Sequence[Subscription]:
        """Subscriptions to watch: Stripe's `incomplete` or `past_due`, or the pseudo-status
        `trialing_without_payment_method` (a trial that will end with nothing to charge)."""
        query = select(Subscription)
        if status == "trialing_without_payment_method":
            query = query.where(Subscription.status == "trialing",
                                Subscription.payment_method_on_file.is_not(True))
        else:
            query = query.where(Subscription.status == status)
        return self.session.scalars(query.order_by(Subscription.created_at,
                                                   Subscription.id)).all()


@dataclass(frozen=True, slots=True)
class EntitlementFacts:
    """The stored facts a tenant's entitlement is decided on."""

    payment_failures: int | None
    current_plan: str | None
    subscription_id: str | None
    status: str | None
    cancel_at_period_end: bool | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    dunning_state: str | None  # the newest timeline entry's state; None without one


# The tenant's access columns, its subscription's period and its newest timeline entry.
_LATEST_STATE = (select(TimelineEntry.to_state)
                 .where(TimelineEntry.tenant_id == Tenant.tenant_id)
                 .order_by(TimelineEntry.id.desc()).limit(1)
                 .correlate(Tenant).scalar_subquery())
_ENTITLEMENT = (select(Tenant.payment_failures, Tenant.current_plan, Subscription.id,
                       Subscription.status, Subscription.cancel_at_period_end,
                       Subscription.current_period_start, Subscription.current_period_end,
                       _LATEST_STATE.label("dunning_state"))
                .outerjoin(Subscription, Subscription.id == Tenant.stripe_subscription_id)
                .where(Tenant.tenant_id == bindparam("tenant_id")))


class EntitlementRepository:
    """The entitlement's read, asked on every SaaS request: one indexed Core statement on a
    plain connection, since the ORM and a session would cost more than the reads."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def facts(self, tenant_id: str) -> EntitlementFacts | None:
        with self.db.engine.connect() as connection:
            row = connection.execute(_ENTITLEMENT, {"tenant_id": tenant_id}).first()
        return None if row is None else EntitlementFacts(*row)
