"""dunning timeline and notification outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-20
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # tables come with dunning and notifications


def downgrade() -> None:
    pass
