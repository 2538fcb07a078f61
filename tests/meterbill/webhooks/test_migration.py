"""Migration 0002 creates the inbox and notices tables and removes them again."""

from __future__ import annotations

from sqlalchemy import inspect

from meterbill.adapters.db.migrate import current_revision, downgrade, upgrade
from meterbill.adapters.db.session import Database


def test_upgrade_and_downgrade(database_url: str) -> None:
    db = Database(database_url)
    try:
        upgrade(db.engine, "0002")  # later revisions are not this test's business
        assert current_revision(db.engine) == "0002"
        tables = set(inspect(db.engine).get_table_names())
        assert {"webhook_events", "billing_notices"} <= tables
        columns = {c["name"] for c in inspect(db.engine).get_columns("webhook_events")}
        assert {"event_id", "payload", "attempts", "traceback", "handled_at", "claimed_by",
                "claimed_until", "next_attempt_at"} <= columns
        downgrade(db.engine, "0001")
        assert current_revision(db.engine) == "0001"
        assert "webhook_events" not in set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()
