"""Hostile values in paths and bodies are answered 4xx naming the field, never 500.

Each test here was written against an answer that was a 500 (or a 200 for a value the storage
cannot hold, or a schema the routes disagree with) before the API's constraints were fixed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from .support import error_of

INT64_MAX = 2**63 - 1


@pytest.mark.parametrize("value", [str(2**63), str(INT64_MAX), str(2**31), "-1", "0",
                                   "99999999999999999999999"])
def test_a_notification_id_beyond_the_column_is_422_naming_it(
        api: TestClient, auth: dict[str, str], value: str) -> None:
    # 2**63 was a 500 (OverflowError binding it to SQLite's INTEGER); 2**31 overflows
    # PostgreSQL's INTEGER; 0 and negatives are never an id.
    response = api.get(f"/notifications/{value}", headers=auth)
    assert response.status_code == 422, response.text
    assert error_of(response)["field"] == "notification_id"


def test_a_notification_id_in_range_that_does_not_exist_is_404(
        api: TestClient, auth: dict[str, str]) -> None:
    response = api.get(f"/notifications/{2**31 - 1}", headers=auth)
    assert response.status_code == 404, response.text


@pytest.fixture
def seeded(api: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    """test_tenant_001 on pro with a card: `customer_id` and `subscription_id`."""
    customer = api.post("/customers", headers=auth, json={
        "tenant_id": "test_tenant_001", "email": "billing@acme.test"}).json()["customer_id"]
    response = api.post("/subscriptions", headers=auth, json={
        "customer_id": customer, "plan_type": "pro", "tenant_id": "test_tenant_001",
        "payment_method_id": "pm_card_visa"})
    assert response.status_code == 201, response.text
    return {"customer_id": customer, "subscription_id": response.json()["id"]}


def test_a_query_count_beyond_an_events_quantity_is_422(
        api: TestClient, auth: dict[str, str], seeded: dict[str, Any]) -> None:
    # 2**64 was a 500 (the usage store's BIGINT); 10**13 was stored as one event.
    for count in (2**64, 10**13):
        response = api.post("/usage/report", headers=auth, json={
            "tenant_id": "test_tenant_001", "subscription_id": seeded["subscription_id"],
            "query_count": count})
        assert response.status_code == 422, response.text
        assert error_of(response)["field"] == "query_count"


@pytest.mark.parametrize(("path", "field"), [
    ("/usage/report", "query_count"), ("/subscriptions", "trial_days"),
    ("/subscriptions", "days_until_due")])
def test_a_boolean_is_not_a_number(api: TestClient, auth: dict[str, str],
                                   seeded: dict[str, Any], path: str, field: str) -> None:
    # `"query_count": true` was stored as a count of 1.
    bodies = {
        "/usage/report": {"tenant_id": "test_tenant_001",
                          "subscription_id": seeded["subscription_id"], "query_count": True},
        "/subscriptions": {"customer_id": seeded["customer_id"], "plan_type": "pro",
                           "tenant_id": "test_tenant_001", "collection": "send_invoice",
                           field: True},
    }
    response = api.post(path, headers=auth, json=bodies[path])
    assert response.status_code == 422, response.text
    assert error_of(response)["field"] == field


@pytest.mark.parametrize(("body", "field"), [
    ({"date": "9999-12-31"}, "date"),  # was a 500: the day after it overflows
    ({"since": "0001-01-01"}, "since"),  # walked 740,000 days (8 s) before answering
])
def test_a_sync_outside_a_year_up_to_today_is_refused(
        api: TestClient, auth: dict[str, str], body: dict[str, str], field: str) -> None:
    response = api.post("/admin/usage/sync", headers=auth, json=body)
    assert response.status_code == 400, response.text
    assert error_of(response)["field"] == field


@pytest.mark.parametrize("period_end", ["9999-12-31T23:59:59Z", "2026-12-01T00:00:00"])
def test_a_flush_needs_a_period_end_with_its_zone_and_within_a_year(
        api: TestClient, auth: dict[str, str], seeded: dict[str, Any], period_end: str) -> None:
    response = api.post("/admin/usage/flush", headers=auth, json={
        "customer_id": seeded["customer_id"], "period_end": period_end})
    assert response.status_code in (400, 422), response.text
    assert error_of(response)["field"] == "period_end"


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("POST", "/subscriptions/{sub}/plan", {"plan_type": "p" * 41}, "plan_type"),
    ("DELETE", "/subscriptions/sub_" + "a" * 61, None, "subscription_id"),
    ("POST", "/subscriptions", {"customer_id": "cus_" + "a" * 61, "plan_type": "pro",
                                "tenant_id": "test_tenant_001"}, "customer_id"),
    ("POST", "/admin/jobs/" + "x" * 65 + "/run", None, "name"),
    ("GET", "/billing/portal/" + "x" * 129, None, "tenant_id"),
])
def test_strings_longer_than_their_columns_are_422(
        api: TestClient, auth: dict[str, str], seeded: dict[str, Any], method: str, path: str,
        body: dict[str, Any] | None, field: str) -> None:
    path = path.replace("{sub}", seeded["subscription_id"])
    response = api.request(method, path, headers=auth, json=body)
    assert response.status_code == 422, response.text
    assert error_of(response)["field"] == field


@pytest.mark.parametrize("field", ["email", "name"])
def test_a_nul_character_is_422_naming_the_field(api: TestClient, auth: dict[str, str],
                                                 field: str) -> None:
    # PostgreSQL text cannot hold U+0000: without the check this was a 500 there.
    body = {"tenant_id": "t_nul", "email": "billing@acme.test", "name": "Acme"}
    body[field] = "a\x00b@acme.test" if field == "email" else "Ac\x00me"
    response = api.post("/customers", headers=auth, json=body)
    assert response.status_code == 422
    assert error_of(response)["field"] == field and "NUL" in error_of(response)["message"]


def test_the_schema_states_the_bounds(api: TestClient) -> None:
    openapi = api.get("/openapi.json").json()
    [notification_id] = openapi["paths"]["/notifications/{notification_id}"]["get"][
        "parameters"]
    assert notification_id["schema"]["minimum"] == 1
    assert notification_id["schema"]["maximum"] == 2**31 - 1
    components = openapi["components"]["schemas"]
    report = components["UsageReportBody"]["properties"]
    assert report["query_count"]["maximum"] == 10**12
    assert report["subscription_id"]["maxLength"] == 64
    assert components["PlanChange"]["properties"]["plan_type"]["maxLength"] == 40


def _served_examples(openapi: dict[str, Any], path: str) -> list[Any]:
    content = openapi["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    if "example" in content:
        return [content["example"]]
    return [example["value"] for example in content["examples"].values()]


def test_the_schemas_dated_examples_are_valid_today(
        api: TestClient, auth: dict[str, str], seeded: dict[str, Any]) -> None:
    # The usage example was dated 2026-05-01: refused as older than 35 days ever after.
    openapi = api.get("/openapi.json").json()
    assert "<example:" not in str(openapi)
    [events] = _served_examples(openapi, "/usage/events")
    response = api.post("/usage/events", headers=auth, json=events)
    assert response.status_code == 200 and response.json()["accepted"] == 1, response.text
    stamp = datetime.fromisoformat(events["events"][0]["timestamp"])
    assert timedelta(0) <= datetime.now(UTC) - stamp < timedelta(days=1)
    report = openapi["components"]["schemas"]["UsageReportBody"]["properties"]["date"]
    assert report["examples"] == [datetime.now(UTC).date().isoformat()]


def test_the_schemas_ids_are_placeholders_that_say_where_the_real_one_comes_from(
        api: TestClient) -> None:
    openapi = api.get("/openapi.json").json()
    text = str(openapi)
    assert "cus_123" not in text and "sub_123" not in text
    for body in _served_examples(openapi, "/subscriptions"):
        assert body["customer_id"] == "cus_FromPostCustomers"
    for body in _served_examples(openapi, "/usage/report"):
        assert body["subscription_id"] == "sub_FromPostSubscriptions"
