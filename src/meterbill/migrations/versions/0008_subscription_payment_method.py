"""subscriptions.payment_method_on_file: whether the subscription has something to charge

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10

A trialing subscription without a payment method ends its trial unpaid; the API says so and
`GET /subscriptions?status=trialing_without_payment_method` lists them. NULL: not known (rows
made before this revision, or from a webhook about a subscription meterbill did not create).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.add_column(sa.Column("payment_method_on_file", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("payment_method_on_file")
