"""tenants and subscriptions

Revision ID: 0001
Revises:
Create Date: 2026-11-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meterbill.adapters.db.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("stripe_customer_id", sa.String(64), nullable=True),
        sa.Column("stripe_subscription_id", sa.String(64), nullable=True),
        sa.Column("current_plan", sa.String(40), nullable=True),
        sa.Column("billing_status", sa.String(32), nullable=False),
        sa.Column("payment_failures", sa.Integer(), nullable=False),
        sa.Column("rate_limit_multiplier", sa.Float(), nullable=False),
        sa.Column("soft_suspended", sa.Boolean(), nullable=False),
        sa.Column("api_access_enabled", sa.Boolean(), nullable=False),
        sa.Column("last_payment_date", UTCDateTime(), nullable=True),
        sa.Column("suspended_at", UTCDateTime(), nullable=True),
        sa.Column("subscription_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_tenants_tenant_id")),
        sa.UniqueConstraint("stripe_customer_id", name=op.f("uq_tenants_stripe_customer_id")),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("plan_type", sa.String(40), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("base_item_id", sa.String(64), nullable=True),
        sa.Column("overage_item_id", sa.String(64), nullable=True),
        sa.Column("base_price_id", sa.String(64), nullable=True),
        sa.Column("overage_price_id", sa.String(64), nullable=True),
        sa.Column("current_period_start", UTCDateTime(), nullable=True),
        sa.Column("current_period_end", UTCDateTime(), nullable=True),
        sa.Column("trial_end", UTCDateTime(), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("canceled_at", UTCDateTime(), nullable=True),
        sa.Column("latest_invoice", sa.String(64), nullable=True),
        sa.Column("pending_plan", sa.String(40), nullable=True),
        sa.Column("pending_plan_at", UTCDateTime(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"],
            name=op.f("fk_subscriptions_tenant_id_tenants"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index(op.f("ix_subscriptions_tenant_id"), "subscriptions", ["tenant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_subscriptions_tenant_id"), table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_table("tenants")
