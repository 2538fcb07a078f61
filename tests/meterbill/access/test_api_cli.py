"""The entitlement endpoint in each state (with its ETag and 304), the timeline, the manual
trigger, their errors (401, 404, 422), the usage total's short cache, and the CLI commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from meterbill.bootstrap import Container
from meterbill.domain.usage import UsageEvent
from meterbill.entrypoints.cli import CliContext, app
from meterbill.services.access.entitlement import UsageTotals

from ..conftest import API_TOKEN
from .conftest import EMAIL, TENANT

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def tenant(container: Container) -> str:
    """On Pro, in its trial, with a card; three queries used this period."""
    customer = container.customers.ensure_customer(TENANT, EMAIL, "Acme Inc.")
    assert customer.stripe_customer_id is not None
    view = container.subscriptions.create(TENANT, customer.stripe_customer_id, "pro",
                                          payment_method_id="pm_card_visa")
    assert view.current_period_start is not None
    _use(container, view.current_period_start, 3)
    return TENANT


def _use(container: Container, start: datetime, count: int, prefix: str = "q") -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    container.usage_store.insert(
        UsageEvent(f"{prefix}{i}", TENANT, "queries", 1, start + timedelta(minutes=i + 1), now)
        for i in range(count))


def _entitlement(api: TestClient, **headers: str) -> Any:
    return api.get(f"/tenants/{TENANT}/entitlement", headers={**AUTH, **headers})


def test_entitlement_in_each_state(api: TestClient, tenant: str) -> None:
    response = _entitlement(api)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("access", "rate_limit_multiplier", "reason", "plan",
                                 "included", "used_this_period", "dunning_state")} == {
        "access": "full", "rate_limit_multiplier": 1.0, "reason": "subscription trialing",
        "plan": "pro", "included": 100_000, "used_this_period": 3,
        "dunning_state": "good_standing"}
    expected = {
        1: ("full", 1.0, "payment overdue after 1 failed payment attempt (reminder)"),
        2: ("full", 1.0, "payment overdue after 2 failed payment attempts (warning)"),
        3: ("reduced", 0.5,
            "payment overdue: reduced access after 3 failed payment attempts (final_warning)"),
        4: ("none", 0.0, "suspended for non-payment after 4 failed payment attempts"),
        0: ("full", 1.0, "subscription trialing"),
    }
    for count, (access, multiplier, reason) in expected.items():
        step = api.post("/dunning/process", headers=AUTH, json={
            "tenant_id": TENANT, "failure_count": count, "invoice_amount_cents": 9900})
        assert step.status_code == 200, step.text
        body = _entitlement(api).json()
        assert (body["access"], body["rate_limit_multiplier"], body["reason"]) == (
            access, multiplier, reason), count


def test_the_etag_gives_304_until_something_changes(api: TestClient, tenant: str) -> None:
    first = _entitlement(api)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and first.headers["Cache-Control"] == "private, no-cache"
    unchanged = _entitlement(api, **{"If-None-Match": etag})
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    assert unchanged.headers["ETag"] == etag
    assert _entitlement(api, **{"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert _entitlement(api, **{"If-None-Match": '"other"'}).status_code == 200
    api.post("/dunning/process", headers=AUTH,
             json={"tenant_id": TENANT, "failure_count": 3, "invoice_amount_cents": 9900})
    changed = _entitlement(api, **{"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["access"] == "reduced"
    assert changed.headers["ETag"] != etag


def test_unknown_tenant_and_bad_token(api: TestClient, tenant: str) -> None:
    missing = api.get("/tenants/nobody/entitlement", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_tenant"
    assert api.get("/tenants/nobody/timeline", headers=AUTH).status_code == 404
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        assert api.get(f"/tenants/{TENANT}/entitlement", headers=headers).status_code == 401
        assert api.get(f"/tenants/{TENANT}/timeline", headers=headers).status_code == 401
        assert api.post("/dunning/process", headers=headers, json={
            "tenant_id": TENANT, "failure_count": 1, "invoice_amount_cents": 1}).status_code == 401


def test_manual_trigger_and_timeline(api: TestClient, tenant: str) -> None:
    for count in (1, 4, 0):
        response = api.post("/dunning/process", headers=AUTH, json={
            "tenant_id": TENANT, "failure_count": count, "invoice_amount_cents": 9900})
        assert response.status_code == 200
    assert response.json()["to_state"] == "good_standing"
    assert response.json()["notices"] == []  # an operator's reset received no money
    timeline = api.get(f"/tenants/{TENANT}/timeline", headers=AUTH).json()
    assert timeline["count"] == 3
    assert [(e["from_state"], e["to_state"], e["cause"]) for e in timeline["data"]] == [
        ("good_standing", "reminder", "manual"), ("reminder", "suspended", "manual"),
        ("suspended", "good_standing", "manual")]
    newest = api.get(f"/tenants/{TENANT}/timeline?limit=1", headers=AUTH).json()
    assert [e["to_state"] for e in newest["data"]] == ["good_standing"]
    bad = api.post("/dunning/process", headers=AUTH, json={
        "tenant_id": TENANT, "failure_count": -1, "invoice_amount_cents": 9900})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "failure_count"
    # invoice_amount is in dollars (99.5 = $99.50); a fraction of a cent is refused.
    sub_cent = api.post("/dunning/process", headers=AUTH, json={
        "tenant_id": TENANT, "failure_count": 1, "invoice_amount": 99.505})
    assert sub_cent.status_code == 422 and sub_cent.json()["error"]["field"] == "invoice_amount"
    unknown = api.post("/dunning/process", headers=AUTH, json={
        "tenant_id": "nobody", "failure_count": 1, "invoice_amount_cents": 1})
    assert unknown.status_code == 404


def test_the_usage_total_is_reused_briefly(container: Container, tenant: str) -> None:
    now = [1000.0]
    totals = UsageTotals(lambda: container.usage_store, ttl=10.0, clock=lambda: now[0])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2100, 1, 1, tzinfo=UTC)
    assert totals.total(TENANT, "queries", start, end) == 3
    _use(container, datetime.now(UTC) - timedelta(hours=1), 2, prefix="later")
    assert totals.total(TENANT, "queries", start, end) == 3  # within ten seconds: reused
    assert totals.queries == 1
    now[0] += 10.5
    assert totals.total(TENANT, "queries", start, end) == 5
    assert totals.queries == 2
    uncached = UsageTotals(lambda: container.usage_store, ttl=0.0)
    assert [uncached.total(TENANT, "queries", start, end) for _ in range(2)] == [5, 5]
    assert uncached.queries == 2


def test_entitlement_answers_without_the_usage_store(container: Container,
                                                     tenant: str) -> None:
    def broken() -> Any:
        raise RuntimeError("usage store is down")

    container.entitlement.usage.store = broken
    container.entitlement.usage.ttl = 0.0
    answer = container.entitlement.get(TENANT)
    assert (answer.access, answer.used_this_period) == ("full", None)


# --- the CLI ---------------------------------------------------------------------------------


def _cli(container: Container, *args: str) -> Any:
    context = CliContext(settings_factory=lambda: container.settings,
                         container_factory=lambda _settings: container,
                         close_container=False, lasting_sandbox=False)
    result = CliRunner().invoke(app, list(args), obj=context)
    return result


def test_cli_process_timeline_entitlement_and_policy(container: Container,
                                                     tenant: str) -> None:
    done = _cli(container, "dunning", "process", "--tenant", TENANT, "--failures", "3",
                "--amount-cents", "9900", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["to_state"] == "final_warning"
    timeline = json.loads(_cli(container, "tenants", "timeline", TENANT, "--json").stdout)
    assert [e["to_state"] for e in timeline["data"]] == ["final_warning"]
    people = _cli(container, "tenants", "timeline", TENANT)
    assert people.exit_code == 0 and "Timeline of acme (1)" in people.stdout
    assert "manual" in people.stdout
    entitlement = json.loads(_cli(container, "tenants", "entitlement", TENANT,
                                  "--json").stdout)
    assert (entitlement["access"], entitlement["rate_limit_multiplier"]) == ("reduced", 0.5)
    policy = json.loads(_cli(container, "dunning", "policy", "--json").stdout)
    assert [s["name"] for s in policy["steps"]] == ["reminder", "warning", "final_warning",
                                                    "suspended"]
    missing = _cli(container, "tenants", "timeline", "nobody", "--json")
    assert missing.exit_code == 1
    assert json.loads(missing.stdout)["error"]["code"] == "unknown_tenant"
