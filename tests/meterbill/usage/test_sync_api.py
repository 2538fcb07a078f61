"""`POST /usage/report`: a day's total stored exactly once and synced to Stripe's meter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stripe_sandbox import Sandbox
from stripe_sandbox.resources import meters


@pytest.fixture
def tenant(api: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    customer = api.post("/customers", headers=auth, json={
        "tenant_id": "acme", "email": "billing@acme.test"}).json()
    response = api.post("/subscriptions", headers=auth, json={
        "customer_id": customer["customer_id"], "plan_type": "pro", "tenant_id": "acme",
        "payment_method_id": "pm_card_visa"})
    assert response.status_code == 201, response.text
    return {"customer_id": customer["customer_id"], "subscription_id": response.json()["id"]}


def stripe_today(sandbox: Sandbox, customer_id: str) -> int:
    meter = next(iter(sandbox.store.all("billing.meter")))
    now = int(datetime.now(UTC).timestamp())
    return int(meters.usage_total(sandbox, meter["id"], customer_id, now - 86400 * 2, now + 600))


def test_a_report_sets_the_days_total_once(api: TestClient, auth: dict[str, str],
                                           tenant: dict[str, Any], sandbox: Sandbox) -> None:
    body = {"tenant_id": "acme", "subscription_id": tenant["subscription_id"],
            "query_count": 1200}
    first = api.post("/usage/report", headers=auth, json=body)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert (answer["previous_total"], answer["added"], answer["stored_total"]) == (0, 1200, 1200)
    assert (answer["sync"]["status"], answer["sync"]["sent"]) == ("sent", 1200)
    assert answer["date"] == datetime.now(UTC).date().isoformat()
    assert stripe_today(sandbox, tenant["customer_id"]) == 1200

    # The same report again, and a lower one: nothing stored, nothing sent.
    for count in (1200, 900):
        again = api.post("/usage/report", headers=auth, json={**body, "query_count": count})
        assert again.status_code == 200
        assert (again.json()["added"], again.json()["sync"]["status"]) == (0, "unchanged")
    # A higher total sends the difference.
    higher = api.post("/usage/report", headers=auth, json={**body, "query_count": 1500}).json()
    assert (higher["added"], higher["sync"]["sent"]) == (300, 300)
    assert stripe_today(sandbox, tenant["customer_id"]) == 1500


def test_bad_reports(api: TestClient, auth: dict[str, str], tenant: dict[str, Any]) -> None:
    body = {"tenant_id": "acme", "subscription_id": tenant["subscription_id"],
            "query_count": 10}
    cases = [
        ({**body, "tenant_id": "ghost"}, 404, "unknown_tenant", "tenant_id"),
        ({**body, "subscription_id": "sub_someoneelse"}, 422, "invalid_usage_report",
         "subscription_id"),
        ({**body, "query_count": -1}, 422, "invalid_request", "query_count"),
        ({**body, "date": (datetime.now(UTC) - timedelta(days=40)).date().isoformat()}, 422,
         "invalid_usage_report", "date"),
        ({**body, "date": (datetime.now(UTC) + timedelta(days=2)).date().isoformat()}, 422,
         "invalid_usage_report", "date"),
        ({**body, "queries": 5}, 422, "invalid_request", "queries"),
    ]
    for payload, status, code, field in cases:
        response = api.post("/usage/report", headers=auth, json=payload)
        assert response.status_code == status, (payload, response.text)
        error = response.json()["error"]
        assert (error["code"], error.get("field")) == (code, field), error
    assert api.post("/usage/report", json=body).status_code == 401
