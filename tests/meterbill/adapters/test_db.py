"""Migrations on SQLite and PostgreSQL, the models they must match, and the race-safe writes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from meterbill.adapters.db.migrate import alembic_config, current_revision, downgrade, upgrade
from meterbill.adapters.db.models import Base, Tenant, load_all_models
from meterbill.adapters.db.repositories import TenantRepository
from meterbill.adapters.db.session import Database


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def test_upgrade_creates_the_tables_and_downgrade_removes_them(db: Database) -> None:
    assert current_revision(db.engine) is None
    upgrade(db.engine)
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None and current_revision(db.engine) == head
    tables = set(inspect(db.engine).get_table_names())
    assert {"tenants", "subscriptions", "alembic_version"} <= tables
    columns = {c["name"] for c in inspect(db.engine).get_columns("tenants")}
    assert {"tenant_id", "email", "name", "stripe_customer_id", "stripe_subscription_id",
            "current_plan", "billing_status", "payment_failures", "rate_limit_multiplier",
            "soft_suspended", "api_access_enabled", "last_payment_date", "suspended_at",
            "created_at", "updated_at"} <= columns
    upgrade(db.engine)  # a second upgrade is a no-op
    downgrade(db.engine, "base")
    assert not {"tenants", "subscriptions"} & set(inspect(db.engine).get_table_names())


def test_migrations_match_the_models(db: Database) -> None:
    load_all_models()
    upgrade(db.engine)
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_datetimes_come_back_aware_in_utc(db: Database) -> None:
    upgrade(db.engine)
    paris = timezone(timedelta(hours=1))
    moment = datetime(2026, 3, 1, 12, 30, tzinfo=paris)
    with db.session() as session:
        session.add(Tenant(tenant_id="t", billing_status="none", payment_failures=0,
                           rate_limit_multiplier=0.0, soft_suspended=False,
                           api_access_enabled=False, subscription_seq=0,
                           last_payment_date=moment))
    with db.session() as session:
        row = TenantRepository(session).get("t")
        assert row is not None and row.last_payment_date is not None
        assert row.last_payment_date == moment
        assert row.last_payment_date.tzinfo is not None
        assert row.last_payment_date.utcoffset() == timedelta(0)
        assert row.created_at.tzinfo is not None
    with pytest.raises(Exception, match="naive datetime"), db.session() as session:
        row = TenantRepository(session).get("t")
        assert row is not None
        row.suspended_at = datetime(2026, 1, 1)
        session.flush()


def test_claim_customer_keeps_the_first_customer(db: Database) -> None:
    upgrade(db.engine)
    with db.session() as session:
        TenantRepository(session).claim_customer("t", "a@t.test", None, "cus_first")
    with db.session() as session:
        TenantRepository(session).claim_customer("t", "b@t.test", "B", "cus_second")
    with db.session() as session:
        repo = TenantRepository(session)
        row = repo.get("t")
        assert row is not None
        assert (row.stripe_customer_id, row.email) == ("cus_first", "a@t.test")
        assert len(repo.all()) == 1
        assert repo.by_customer("cus_first") is row


def test_subscription_seq_is_compare_and_set(db: Database) -> None:
    upgrade(db.engine)
    with db.session() as session:
        TenantRepository(session).claim_customer("t", "a@t.test", None, "cus_1")
    with db.session() as session:
        assert TenantRepository(session).advance_subscription_seq("t", 0) is True
    with db.session() as session:
        assert TenantRepository(session).advance_subscription_seq("t", 0) is False
        row = TenantRepository(session).get("t")
        assert row is not None and row.subscription_seq == 1


def test_sqlite_parent_directory_is_created(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    database = Database("sqlite:///var/meterbill.db")
    try:
        upgrade(database.engine)
        assert (tmp_path / "var" / "meterbill.db").exists()
    finally:
        database.dispose()


def test_utc_now_default_is_aware() -> None:
    from meterbill.domain.clock import utcnow

    assert utcnow().tzinfo is UTC
