"""usage sync ledger and usage drift

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meterbill.adapters.db.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(100), nullable=False),
        sa.Column("event_name", sa.String(100), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("slot_start", UTCDateTime(), nullable=False),
        sa.Column("event_timestamp", UTCDateTime(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("attempted_at", UTCDateTime(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_ledger")),
        sa.UniqueConstraint("identifier", name=op.f("uq_usage_ledger_identifier")),
        sa.UniqueConstraint("tenant_id", "metric", "day", "seq",
                            name="uq_usage_ledger_tenant_metric_day_seq"),
    )
    op.create_index("ix_usage_ledger_tenant_day", "usage_ledger", ["tenant_id", "day"])
    op.create_index("ix_usage_ledger_state", "usage_ledger", ["state"])
    op.create_table(
        "usage_drift",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("period_label", sa.String(32), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("ours", sa.BigInteger(), nullable=False),
        sa.Column("stripe", sa.BigInteger(), nullable=False),
        sa.Column("ledger", sa.BigInteger(), nullable=False),
        sa.Column("diff", sa.BigInteger(), nullable=False),
        sa.Column("found_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_drift")),
    )
    op.create_index(op.f("ix_usage_drift_tenant_id"), "usage_drift", ["tenant_id"])
    op.create_index(op.f("ix_usage_drift_found_at"), "usage_drift", ["found_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_drift_found_at"), table_name="usage_drift")
    op.drop_index(op.f("ix_usage_drift_tenant_id"), table_name="usage_drift")
    op.drop_table("usage_drift")
    op.drop_index("ix_usage_ledger_state", table_name="usage_ledger")
    op.drop_index("ix_usage_ledger_tenant_day", table_name="usage_ledger")
    op.drop_table("usage_ledger")
