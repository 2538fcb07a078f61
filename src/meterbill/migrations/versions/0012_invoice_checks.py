"""invoice_checks: each subscription draft invoice checked against meterbill's own numbers

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

Invoice verification (docs/invoice-verification.md) records every draft it checked, both
versions of its lines, why it was held, and the review action taken with who and why.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meterbill.adapters.db.models import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoice_checks",
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("subscription_id", sa.String(64), nullable=True),
        sa.Column("period_start", UTCDateTime(), nullable=True),
        sa.Column("period_end", UTCDateTime(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stripe_total", sa.Integer(), nullable=False),
        sa.Column("expected_total", sa.Integer(), nullable=True),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("stripe_lines", sa.Text(), nullable=False),
        sa.Column("expected_lines", sa.Text(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
        sa.Column("finalizes_at", UTCDateTime(), nullable=True),
        sa.Column("reminded_at", UTCDateTime(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("correction_cents", sa.Integer(), nullable=True),
        sa.Column("correction_item_id", sa.String(64), nullable=True),
        sa.Column("review_seconds", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("invoice_id", name="pk_invoice_checks"),
    )
    op.create_index("ix_invoice_checks_status", "invoice_checks", ["status", "checked_at"])
    op.create_index("ix_invoice_checks_tenant", "invoice_checks", ["tenant_id", "period_end"])


def downgrade() -> None:
    op.drop_index("ix_invoice_checks_tenant", table_name="invoice_checks")
    op.drop_index("ix_invoice_checks_status", table_name="invoice_checks")
    op.drop_table("invoice_checks")
