"""subscriptions.previous_plan and plan_changed_at: the last plan change made now

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08

The usage view splits a period at a plan change: Stripe bills the usage before it under the old
plan's metered price and the usage after it under the new one (docs/billing.md).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meterbill.adapters.db.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("previous_plan", sa.String(40), nullable=True))
        batch.add_column(sa.Column("plan_changed_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("plan_changed_at")
        batch.drop_column("previous_plan")
