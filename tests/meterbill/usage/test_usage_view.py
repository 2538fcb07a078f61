"""A tenant's usage view: the service on a real database and store (DuckDB always, ClickHouse
when METERBILL_TEST_CLICKHOUSE_URL is set), the domain maths under it, and the HTTP route."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterbill.adapters.db.migrate import upgrade
from meterbill.adapters.db.models import Subscription, Tenant
from meterbill.adapters.db.repositories import TenantRepository
from meterbill.adapters.db.session import Database
from meterbill.adapters.usage.duckdb_store import DuckDBUsageStore
from meterbill.domain.errors import NotFound
from meterbill.domain.plans import Catalog, load_catalog
from meterbill.domain.usage import (
    InvalidUsageQuery,
    UsageEvent,
    charges_for,
    daily_series,
    linear_projection,
    month_bounds,
    parse_period,
    usage_sentence,
)
from meterbill.ports.usage_store import UsageStore
from meterbill.services.usage.view import UsageViewService

from .clickhouse import needs_clickhouse

MAY = datetime(2026, 5, 1, tzinfo=UTC)
JUNE = datetime(2026, 6, 1, tzinfo=UTC)
NOW = datetime(2026, 5, 16, tzinfo=UTC)  # 15 of May's 31 days have passed
SEEDS_SENTENCE = ("You used 125,000 queries this month (25,000 over your 100,000 limit = "
                  "$20.00 overage)")


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(params=["duckdb", pytest.param("clickhouse", marks=needs_clickhouse)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UsageStore]:
    made: UsageStore
    if request.param == "duckdb":
        made = DuckDBUsageStore(tmp_path / "usage.duckdb")
    else:
        from meterbill.adapters.usage.clickhouse_store import ClickHouseUsageStore

        url = request.getfixturevalue("clickhouse_db")
        made = ClickHouseUsageStore(url, table=f"events_{uuid.uuid4().hex[:8]}")
    yield made
    made.close()


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating each time costs more than the
    tests; the database here only holds tenant and subscription rows)."""
    path = tmp_path_factory.mktemp("view") / "template.db"
    made = Database(f"sqlite:///{path}")
    upgrade(made.engine)
    made.dispose()
    return path


@pytest.fixture
def db(migrated: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "meterbill.db"
    shutil.copyfile(migrated, path)
    made = Database(f"sqlite:///{path}")
    yield made
    made.dispose()


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def service(db: Database, store: UsageStore, catalog: Catalog) -> UsageViewService:
    return UsageViewService(db, store, catalog, clock=lambda: NOW)


def add_tenant(db: Database, tenant_id: str, plan: str | None = "pro",
               period: tuple[datetime, datetime] | None = (MAY, JUNE),
               status: str = "active") -> None:
    """A tenant row, and a subscription row as the webhooks record it from Stripe."""
    with db.session() as session:
        sub_id = f"sub_{tenant_id}" if plan else None
        session.add(Tenant(tenant_id=tenant_id, email=f"{tenant_id}@example.test",
                           stripe_customer_id=f"cus_{tenant_id}", stripe_subscription_id=sub_id,
                           current_plan=plan, billing_status=status if plan else "none"))
        session.flush()
        if plan:
            session.add(Subscription(
                id=sub_id, tenant_id=tenant_id, customer_id=f"cus_{tenant_id}",
                plan_type=plan, status=status,
                current_period_start=period[0] if period else None,
                current_period_end=period[1] if period else None))


def usage(tenant: str, at: datetime, quantity: int, event_id: str | None = None,
          metric: str = "queries") -> UsageEvent:
    return UsageEvent(event_id or uuid.uuid4().hex, tenant, metric,  # type: ignore[arg-type]
                      quantity, at, at)


def seed_pro_month(store: UsageStore, tenant: str = "acme") -> list[UsageEvent]:
    """125,000 queries between May 1 and May 15 (10 days, some ids sent twice) and usage that
    must not count: another tenant's, tokens, and events just outside the period."""
    events = [usage(tenant, MAY + timedelta(days=day, hours=hour), 1000, f"q-{day}-{hour}")
              for day in range(0, 15, 3) for hour in range(20)]  # 5 days × 20 × 1,000
    events += [usage(tenant, MAY + timedelta(days=day, hours=hour), 250, f"r-{day}-{hour}")
               for day in range(1, 15, 3) for hour in range(20)]  # 5 days × 20 × 250
    store.insert(events)
    store.insert(events[:30])  # a repeated batch: counted once
    store.insert([
        usage("globex", MAY + timedelta(days=2), 999_999),
        usage(tenant, MAY + timedelta(days=2), 5_000, metric="tokens"),
        usage(tenant, MAY - timedelta(seconds=1), 77_777),
        usage(tenant, JUNE, 88_888),
    ])
    return events


# --- the service ------------------------------------------------------------------------


def test_pro_tenant_with_125000_queries(
    service: UsageViewService, db: Database, store: UsageStore
) -> None:
    add_tenant(db, "acme")
    events = seed_pro_month(store)
    assert sum(e.quantity for e in events) == 125_000

    view = service.view("acme", "current")

    assert (view.used, view.included, view.overage_units) == (125_000, 100_000, 25_000)
    assert view.overage_amount == 2000  # 25,000 × 0.08 cents
    assert (view.base_amount, view.total_amount) == (9900, 11900)
    assert view.overage_unit_amount == "0.08"
    assert view.sentence == SEEDS_SENTENCE
    assert (view.period.start, view.period.end, view.period.source) == (MAY, JUNE, "subscription")
    assert view.period.days == 31 and not view.period.complete
    # Linear: 125,000 in 15 of 31 days → 258,333 by June 1; overage 158,333 × 0.08 = 12,666.64.
    assert view.projection.used == 258_333
    assert view.projection.overage_amount == 12_667
    assert view.projected_total == 9900 + 12_667
    days = [(d.date, d.used) for d in view.daily]
    assert len(days) == 31 and days[0] == (date(2026, 5, 1), 20_000)
    assert days[1] == (date(2026, 5, 2), 5_000) and days[2] == (date(2026, 5, 3), 0)
    assert all(used == 0 for _, used in days[15:])
    assert sum(used for _, used in days) == view.used
    data = view.to_dict()
    assert data["daily"][0] == {"date": "2026-05-01", "used": 20_000}
    assert data["period"]["start"] == "2026-05-01T00:00:00+00:00"
    assert data["sentence"] == SEEDS_SENTENCE


def test_an_empty_period_is_all_zeros(service: UsageViewService, db: Database) -> None:
    add_tenant(db, "quiet")
    view = service.view("quiet")
    assert (view.used, view.overage_units, view.overage_amount) == (0, 0, 0)
    assert view.projected_total == view.total_amount == 9900
    assert [d.used for d in view.daily] == [0] * 31
    assert view.sentence == "You used 0 queries this month (within your 100,000 limit; no overage)"


def test_a_calendar_month_and_its_bounds(
    service: UsageViewService, db: Database, store: UsageStore
) -> None:
    add_tenant(db, "acme")
    store.insert([usage("acme", datetime(2026, 4, 1, tzinfo=UTC), 40_000),
                  usage("acme", datetime(2026, 4, 30, 23, 59, 59, tzinfo=UTC), 1),
                  usage("acme", MAY, 500)])
    view = service.view("acme", "2026-04")
    assert (view.period.label, view.period.source) == ("2026-04", "calendar_month")
    assert (view.period.start, view.period.end) == (datetime(2026, 4, 1, tzinfo=UTC), MAY)
    assert view.period.complete and view.period.days == 30
    assert view.used == 40_001 and view.projection.used == 40_001  # over: no projection
    assert view.sentence == "You used 40,001 queries in April 2026 (within your 100,000 limit; " \
                           "no overage)"


def test_a_tenant_without_a_plan_gets_a_clear_answer(
    service: UsageViewService, db: Database, store: UsageStore
) -> None:
    add_tenant(db, "free", plan=None)
    store.insert([usage("free", MAY + timedelta(days=3), 1234)])
    view = service.view("free")
    assert view.plan is None and view.used == 1234
    assert (view.included, view.overage_amount, view.projected_total) == (None, None, None)
    assert view.sentence == "You used 1,234 queries this month (no plan, so none of it is billed)"
    assert view.period.source == "calendar_month"  # no subscription: May in UTC
    assert any("no plan" in note for note in view.notes)


def test_a_canceled_subscription_bills_nothing_more(
    service: UsageViewService, db: Database
) -> None:
    add_tenant(db, "gone", status="canceled")
    view = service.view("gone")
    assert view.plan is None and view.subscription_status == "canceled"


def test_tokens_are_shown_but_not_billed(
    service: UsageViewService, db: Database, store: UsageStore
) -> None:
    add_tenant(db, "acme")
    store.insert([usage("acme", MAY, 5000, metric="tokens")])
    view = service.view("acme", metric="tokens")
    assert view.used == 5000 and view.overage_amount is None
    assert view.sentence == "You used 5,000 tokens this month (tokens are not billed by your " \
                            "Pro plan)"


def test_unknown_tenant_and_bad_queries(service: UsageViewService, db: Database) -> None:
    with pytest.raises(NotFound) as missing:
        service.view("nobody")
    assert missing.value.status == 404 and "nobody" in missing.value.message
    add_tenant(db, "acme")
    for period, hint in [("2026-13", "YYYY-MM"), ("May", "YYYY-MM"), ("2026-5", "YYYY-MM"),
                         ("2026-06", "has not started")]:
        with pytest.raises(InvalidUsageQuery) as bad:
            service.view("acme", period)
        assert bad.value.status == 422 and bad.value.field == "period"
        assert hint in bad.value.message
    with pytest.raises(InvalidUsageQuery) as metric:
        service.view("acme", metric="bytes")
    assert metric.value.field == "metric" and "queries, tokens" in metric.value.message


def test_existing_tenants_in_one_query_per_500_ids(db: Database) -> None:
    for name in ("t0007", "t0600", "t1199"):
        add_tenant(db, name, plan=None)
    asked = [f"t{i:04d}" for i in range(1200)] + ["t0007", "nobody"]
    with db.session() as session:  # more ids than one IN list holds
        assert TenantRepository(session).existing_ids(asked) == {"t0007", "t0600", "t1199"}
        assert TenantRepository(session).existing_ids([]) == set()


# --- the domain maths -------------------------------------------------------------------


def test_overage_rounds_each_line_half_up_like_stripe(catalog: Catalog) -> None:
    starter = catalog.get("starter")  # 0.1 cent per query above 10,000
    assert charges_for(starter, 10_004).overage_amount == 0  # 0.4 cent
    assert charges_for(starter, 10_005).overage_amount == 1  # 0.5 cent: half up
    assert charges_for(starter, 10_015).overage_amount == 2  # 1.5 cents, as in Stripe's docs


def test_linear_projection() -> None:
    assert linear_projection(100, MAY, JUNE, MAY + timedelta(days=10)) == 310
    assert linear_projection(100, MAY, JUNE, JUNE) == 100  # over: the final figure
    # An hour in, the elapsed time counts as one day: 10 → 310, not 7,440.
    assert linear_projection(10, MAY, JUNE, MAY + timedelta(hours=1)) == 310
    assert linear_projection(0, MAY, JUNE, NOW) == 0


def test_month_bounds_daily_series_and_period_parsing() -> None:
    assert month_bounds(date(2026, 12, 9)) == (datetime(2026, 12, 1, tzinfo=UTC),
                                               datetime(2027, 1, 1, tzinfo=UTC))
    start = datetime(2026, 5, 30, 12, tzinfo=UTC)
    series = daily_series([(date(2026, 5, 31), 4)], start, start + timedelta(days=2))
    assert series == [(date(2026, 5, 30), 0), (date(2026, 5, 31), 4), (date(2026, 6, 1), 0)]
    assert parse_period(" 2026-05 ", NOW).label == "2026-05"
    assert parse_period(None, NOW).kind == "current"


def test_sentence_singular(catalog: Catalog) -> None:
    assert usage_sentence(1, "queries", "this month", catalog.get("pro")) == \
        "You used 1 query this month (within your 100,000 limit; no overage)"


# --- the HTTP route ---------------------------------------------------------------------


def test_route_end_to_end_with_a_sandbox_subscription(
    api: TestClient, auth: dict[str, str]
) -> None:
    customer = api.post("/customers", headers=auth,
                        json={"tenant_id": "acme", "email": "ops@acme.test"}).json()
    created = api.post("/subscriptions", headers=auth, json={
        "customer_id": customer["customer_id"], "plan_type": "pro", "tenant_id": "acme",
        "payment_method_id": "pm_card_visa", "trial_days": 0})
    assert created.status_code == 201, created.text
    start = datetime.fromisoformat(created.json()["current_period_start"])
    at = int(start.timestamp()) + 1
    events = [{"event_id": f"e{i}", "tenant_id": "acme", "quantity": 5000, "timestamp": at}
              for i in range(25)]
    posted = api.post("/usage/events", headers=auth, json={"events": events + events[:3]})
    assert posted.json()["stored"] == 25

    response = api.get("/tenants/acme/usage", headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert (body["used"], body["overage_units"], body["overage_amount"]) == (125_000, 25_000, 2000)
    assert body["sentence"] == SEEDS_SENTENCE
    assert body["period"]["source"] == "subscription"
    assert body["period"]["start"] == start.isoformat()
    assert sum(day["used"] for day in body["daily"]) == 125_000
    assert body["projected_total"] >= body["total_amount"] == 11_900


ROUTE_ERRORS = [
    ("/tenants/nobody/usage", 404, "unknown_tenant", "tenant_id"),
    ("/tenants/acme/usage?period=2026-13", 422, "invalid_period", "period"),
    ("/tenants/acme/usage?period=next", 422, "invalid_period", "period"),
    ("/tenants/acme/usage?metric=bytes", 422, "invalid_metric", "metric"),
]


def test_route_errors(api: TestClient, auth: dict[str, str]) -> None:
    created = api.post("/customers", headers=auth,
                       json={"tenant_id": "acme", "email": "ops@acme.test"})
    assert created.status_code == 200
    for path, status, code, field in ROUTE_ERRORS:
        response = api.get(path, headers=auth)
        assert response.status_code == status, path
        error = response.json()["error"]
        assert (error["code"], error["field"]) == (code, field), path
    assert api.get("/tenants/acme/usage").status_code == 401
    assert api.get("/tenants/acme/usage", headers=auth).json()["plan"] is None
