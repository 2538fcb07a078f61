"""subscriptions.ended_at: when a canceled subscription ended

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10

Stripe's `canceled_at` is when a cancellation was asked for; a subscription set to cancel at
the period end keeps running (and metering) until `ended_at`. The usage sync stops counting a
canceled subscription's usage at `ended_at` (at `canceled_at` for rows stored before this
column, until Stripe's next event about them refreshes the row).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meterbill.adapters.db.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("ended_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("ended_at")
