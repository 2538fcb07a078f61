"""notification outbox: rendered messages and their delivery state on billing_notices

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-20

Rows recorded before this revision were never meant to be sent: they become `recorded`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meterbill.adapters.db.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLE = "billing_notices"


def upgrade() -> None:
    # batch mode: SQLite cannot alter columns in place; PostgreSQL runs plain ALTERs.
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column("channel", sa.String(16), nullable=False,
                                   server_default="email"))
        batch.add_column(sa.Column("to_admin", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("recipient", sa.Text(), nullable=True))
        batch.add_column(sa.Column("subject", sa.Text(), nullable=True))
        batch.add_column(sa.Column("body_text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("body_html", sa.Text(), nullable=True))
        batch.add_column(sa.Column("facts", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("status", sa.String(16), nullable=False,
                                   server_default="recorded"))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("next_attempt_at", UTCDateTime(), nullable=True))
    op.create_index("ix_billing_notices_status_next", TABLE, ["status", "next_attempt_at"])
    op.create_index(op.f("ix_billing_notices_tenant_id"), TABLE, ["tenant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_billing_notices_tenant_id"), table_name=TABLE)
    op.drop_index("ix_billing_notices_status_next", table_name=TABLE)
    with op.batch_alter_table(TABLE) as batch:
        for column in ("next_attempt_at", "last_error", "attempts", "status", "facts",
                       "body_html", "body_text", "subject", "recipient", "to_admin", "channel"):
            batch.drop_column(column)
