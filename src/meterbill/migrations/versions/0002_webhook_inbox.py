"""webhook inbox and billing notices

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meterbill.adapters.db.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("object_id", sa.String(255), nullable=True),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("handled_at", UTCDateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("claimed_until", UTCDateTime(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_webhook_events_event_id")),
    )
    op.create_index(op.f("ix_webhook_events_type"), "webhook_events", ["type"])
    op.create_index("ix_webhook_events_status_next", "webhook_events",
                    ["status", "next_attempt_at"])
    op.create_table(
        "billing_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dedupe_key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=True),
        sa.Column("event_id", sa.String(255), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_notices")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_billing_notices_dedupe_key")),
    )
    op.create_index(op.f("ix_billing_notices_kind"), "billing_notices", ["kind"])


def downgrade() -> None:
    op.drop_index(op.f("ix_billing_notices_kind"), table_name="billing_notices")
    op.drop_table("billing_notices")
    op.drop_index("ix_webhook_events_status_next", table_name="webhook_events")
    op.drop_index(op.f("ix_webhook_events_type"), table_name="webhook_events")
    op.drop_table("webhook_events")
