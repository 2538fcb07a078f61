"""reconciliation_drifts (what subscription reconciliation found and how it was fixed) and
slo_states (each objective's state and since when), usage_repairs (what usage repair did)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meterbill.adapters.db.models import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reconciliation_drifts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=True),
        sa.Column("subscription_id", sa.String(64), nullable=True),
        sa.Column("local_value", sa.String(255), nullable=False),
        sa.Column("stripe_value", sa.String(255), nullable=False),
        sa.Column("found_at", UTCDateTime(), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("fix", sa.String(255), nullable=False),
        sa.Column("fixed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_drifts")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_reconciliation_drifts_fingerprint")),
    )
    op.create_index("ix_reconciliation_drifts_found_at", "reconciliation_drifts", ["found_at"])


    op.create_table(
        "slo_states",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("value", sa.String(64), nullable=True),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_slo_states")),
    )


    op.create_table(
        "usage_repairs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("reference", sa.String(255), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_repairs")),
    )
    op.create_index("ix_usage_repairs_tenant_id", "usage_repairs", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_usage_repairs_tenant_id", table_name="usage_repairs")
    op.drop_table("usage_repairs")
    op.drop_table("slo_states")
    op.drop_index("ix_reconciliation_drifts_found_at", table_name="reconciliation_drifts")
    op.drop_table("reconciliation_drifts")
