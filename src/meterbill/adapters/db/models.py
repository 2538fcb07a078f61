"""Tables. Changes here need a new Alembic revision in `meterbill/migrations/versions/`."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ...domain.clock import utcnow

# Stable constraint names, so migrations can refer to them on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def load_all_models() -> None:
    """Import every module of this package, so `Base.metadata` knows every table.

    Tables may be declared in any module of `meterbill.adapters.db` (the inbox has its own);
    Alembic's autogenerate and the migration test need all of them.
    """
    import importlib
    import pkgutil

    from meterbill.adapters import db

    for module in pkgutil.iter_modules(db.__path__):
        importlib.import_module(f"{db.__name__}.{module.name}")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Tenant(Base):
    """One SaaS tenant and the billing facts the rest of meterbill acts on."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(128), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(256))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(64))
    current_plan: Mapped[str | None] = mapped_column(String(40))
    billing_status: Mapped[str] = mapped_column(String(32), default="none")
    payment_failures: Mapped[int] = mapped_column(Integer, default=0)
    rate_limit_multiplier: Mapped[float] = mapped_column(Float, default=0.0)
    soft_suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    api_access_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    last_payment_date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # How many subscriptions were ever recorded for the tenant: the nonce in the idempotency
    # key of the next subscription create, and a compare-and-set guard against twins.
    subscription_seq: Mapped[int] = mapped_column(Integer, default=0)
    # Bumped by every webhook handler that commits a decision about the tenant: a handler
    # commits only if it is still the value it read before asking Stripe (optimistic lock).
    state_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Subscription(Base):
    """Our copy of a Stripe subscription (Stripe is the source of truth for its state)."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # Stripe's sub_...
    tenant_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[str] = mapped_column(String(64))
    plan_type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(32))
    base_item_id: Mapped[str | None] = mapped_column(String(64))
    overage_item_id: Mapped[str | None] = mapped_column(String(64))
    base_price_id: Mapped[str | None] = mapped_column(String(64))
    overage_price_id: Mapped[str | None] = mapped_column(String(64))
    current_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    trial_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    latest_invoice: Mapped[str | None] = mapped_column(String(64))
    # Whether Stripe has something to charge (the subscription's or the customer's default
    # payment method); None when not known.
    payment_method_on_file: Mapped[bool | None] = mapped_column(Boolean)
    # A downgrade waiting for the period to end (`pending_plan_at`): the next phase of the
    # subscription's Stripe schedule (see services/billing/subscriptions.py).
    pending_plan: Mapped[str | None] = mapped_column(String(40))
    pending_plan_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last plan change made at once (an upgrade): the plan before it and when. Stripe bills
    # the period's usage before it under the old metered price (docs/billing.md).
    previous_plan: Mapped[str | None] = mapped_column(String(40))
    plan_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Bumped on every change we make in Stripe: part of the next update's idempotency key.
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
