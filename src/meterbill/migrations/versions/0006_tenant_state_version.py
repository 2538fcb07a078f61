"""tenants.state_version: the optimistic-concurrency guard of webhook handlers

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21

Handlers read Stripe before they lock anything and commit only if no other handler changed the
tenant meanwhile (services/webhooks/context.py); this counter is what they compare.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("state_version", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("state_version")
