"""The original brief's example bodies mean what the brief means, and the OpenAPI examples work.

`invoice_amount` is a decimal amount in the currency's major unit (99.00 = $99.00), read from
the JSON text exactly and turned into integer cents at the API; `invoice_amount_cents` says
the same in cents. The dunning service keeps taking integer cents.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterbill.bootstrap import Container

from ..conftest import spy_dunning_amounts
from .support import error_of

TENANT = "test_tenant_001"
SEED_CUSTOMER = {"tenant_id": TENANT, "email": "admin@testcompany.com", "name": "Test Company"}


@pytest.fixture
def customer_id(api: TestClient, auth: dict[str, str]) -> str:
    response = api.post("/customers", headers=auth, json=SEED_CUSTOMER)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["tenant_id"], body["email"], body["name"]) == (
        TENANT, "admin@testcompany.com", "Test Company")
    return str(body["customer_id"])


def _notice_subjects(api: TestClient, auth: dict[str, str]) -> list[str]:
    return [n["subject"] for n in api.get("/notifications", headers=auth).json()["data"]]


def test_the_seeds_bodies_in_order(api: TestClient, auth: dict[str, str],
                                   customer_id: str) -> None:
    seed_subscription = {"customer_id": customer_id, "plan_type": "pro", "tenant_id": TENANT}
    # REQUIRE_PAYMENT_METHOD (default true): the seeds' body has no card, and is told so.
    refused = api.post("/subscriptions", headers=auth, json=seed_subscription)
    assert refused.status_code == 422
    error = error_of(refused)
    assert (error["code"], error["field"]) == ("payment_method_required", "payment_method_id")
    assert "REQUIRE_PAYMENT_METHOD=false" in error["message"]

    created = api.post("/subscriptions", headers=auth,
                       json={**seed_subscription, "payment_method_id": "pm_card_visa"})
    assert created.status_code == 201, created.text
    sub = created.json()
    assert (sub["status"], sub["plan_type"], sub["customer_id"]) == (
        "trialing", "pro", customer_id)
    trial = (datetime.fromisoformat(sub["trial_end"])
             - datetime.fromisoformat(sub["current_period_start"]))
    assert trial.days == 14  # DEFAULT_TRIAL_DAYS

    report = api.post("/usage/report", headers=auth, json={
        "tenant_id": TENANT, "subscription_id": sub["id"], "query_count": 125000})
    assert report.status_code == 200, report.text
    assert (report.json()["stored_total"], report.json()["sync"]["status"]) == (125000, "sent")

    dunning = api.post("/dunning/process", headers=auth, json={
        "tenant_id": TENANT, "failure_count": 1, "invoice_amount": 99.00})
    assert dunning.status_code == 200, dunning.text
    assert (dunning.json()["to_state"], dunning.json()["notices"]) == (
        "reminder", ["dunning_reminder"])
    assert _notice_subjects(api, auth) == ["Your payment of $99.00 did not go through"]

    health = api.get("/health").json()
    assert (health["status"], health["database"], health["schema"]["state"]) == (
        "ok", "ok", "current")


@pytest.fixture
def amounts(container: Container, customer_id: str,
            monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """What the dunning service is asked with: (amount in cents, currency) per call."""
    return spy_dunning_amounts(container, monkeypatch)


def _process(api: TestClient, auth: dict[str, str], amount: str) -> Any:
    """POST /dunning/process with `amount` as raw JSON text (as a client would send it)."""
    body = f'{{"tenant_id": "{TENANT}", "failure_count": 1, {amount}}}'
    return api.post("/dunning/process", content=body.encode(),
                    headers={**auth, "Content-Type": "application/json"})


@pytest.mark.parametrize("amount, cents, currency", [
    ('"invoice_amount": 99.00', 9900, "usd"),
    ('"invoice_amount": 99.5', 9950, "usd"),
    ('"invoice_amount": 99', 9900, "usd"),
    ('"invoice_amount": 0.29', 29, "usd"),  # 0.29 * 100 is 28.999999999999996 in floats
    ('"invoice_amount": 1.15', 115, "usd"),
    ('"invoice_amount": 1e2', 10000, "usd"),
    ('"invoice_amount": "99.10"', 9910, "usd"),
    ('"invoice_amount_cents": 9900', 9900, "usd"),
    ('"invoice_amount": 9900, "currency": "jpy"', 9900, "jpy"),
    ('"invoice_amount": 1.5, "currency": "kwd"', 1500, "kwd"),
])
def test_amounts_in_the_major_unit_become_exact_cents(
        api: TestClient, auth: dict[str, str], amounts: list[tuple[int, str]],
        amount: str, cents: int, currency: str) -> None:
    response = _process(api, auth, amount)
    assert response.status_code == 200, response.text
    assert amounts == [(cents, currency)]


@pytest.mark.parametrize("amount, field, says", [
    ('"invoice_amount": 99.505', "invoice_amount",
     "more decimal places than USD amounts have (2 decimal places)"),
    # Beyond a float's precision: read exactly, not rounded to 100.0.
    ('"invoice_amount": 99.99999999999999999', "invoice_amount", "more decimal places"),
    ('"invoice_amount": 1.5, "currency": "jpy"', "invoice_amount", "no decimal places"),
    ('"invoice_amount": true', "invoice_amount", "must be a number"),
    ('"invoice_amount": -1', "invoice_amount", ">= 0"),
    ('"invoice_amount": "NaN"', "invoice_amount", "finite"),
    ('"invoice_amount": 1e20', "invoice_amount", "more than Stripe accepts"),
    ('"invoice_amount": 99.00, "invoice_amount_cents": 9900', "invoice_amount", "not both"),
    ('"currency": "usd"', "invoice_amount", "invoice_amount is required"),
    ('"invoice_amount_cents": 99.5', "invoice_amount_cents", "integer"),
    ('"invoice_amount_cents": true', "invoice_amount_cents", "integer"),
])
def test_amounts_that_mean_nothing_exact_are_422_naming_the_field(
        api: TestClient, auth: dict[str, str], amounts: list[tuple[int, str]],
        amount: str, field: str, says: str) -> None:
    response = _process(api, auth, amount)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert (error["code"], error["field"]) == ("invalid_request", field)
    assert says in error["message"]
    assert "Value error" not in error["message"]
    assert amounts == []  # the service was never asked


def test_a_boolean_failure_count_is_refused(api: TestClient, auth: dict[str, str],
                                            amounts: list[tuple[int, str]]) -> None:
    response = api.post("/dunning/process", headers=auth, json={
        "tenant_id": TENANT, "failure_count": True, "invoice_amount": 99.00})
    assert response.status_code == 422 and error_of(response)["field"] == "failure_count"
    assert amounts == []


# --- the OpenAPI examples --------------------------------------------------------------------

SEED_ROUTES = ["/customers", "/subscriptions", "/usage/report", "/dunning/process"]


def _examples(openapi: dict[str, Any], path: str) -> dict[str, Any]:
    content = openapi["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    examples: dict[str, Any] = content.get("examples", {})
    return {name: example["value"] for name, example in examples.items()}


def test_the_openapi_examples_of_the_seed_routes_work(
        api: TestClient, auth: dict[str, str]) -> None:
    openapi = api.get("/openapi.json").json()
    examples = {path: _examples(openapi, path) for path in SEED_ROUTES}
    assert all(examples.values()), examples  # each route shows a whole body to try
    dunning = openapi["components"]["schemas"]["DunningProcess"]["properties"]
    assert dunning["invoice_amount"]["examples"] == [99.00]
    assert dunning["invoice_amount_cents"]["examples"] == [9900]
    assert examples["/dunning/process"]["dollars"]["invoice_amount"] == 99.00

    customers = examples["/customers"]
    assert list(customers.values()) == [SEED_CUSTOMER]
    customer = api.post("/customers", headers=auth, json=SEED_CUSTOMER).json()["customer_id"]

    # Each subscription example on a tenant of its own, the placeholder standing for its
    # customer.
    subscribed = {}
    for name, body in examples["/subscriptions"].items():
        assert body["customer_id"] == "cus_FromPostCustomers" and body["tenant_id"] == TENANT
        tenant = f"example_{name}"
        own = api.post("/customers", headers=auth, json={**SEED_CUSTOMER, "tenant_id": tenant})
        subscribed[name] = api.post("/subscriptions", headers=auth, json={
            **body, "tenant_id": tenant, "customer_id": own.json()["customer_id"]})
    assert subscribed["card"].status_code == 201, subscribed["card"].text
    # The seeds' own body needs a card on file unless REQUIRE_PAYMENT_METHOD is off, and its
    # summary says so.
    assert error_of(subscribed["seeds"])["code"] == "payment_method_required"
    assert {r.status_code for r in subscribed.values()} == {201, 422}

    # The rest on test_tenant_001, subscribed as the card example says.
    card = {**examples["/subscriptions"]["card"], "customer_id": customer}
    sub = api.post("/subscriptions", headers=auth, json=card).json()["id"]
    for path in ("/usage/report", "/dunning/process"):
        for name, body in examples[path].items():
            if body.get("subscription_id") == "sub_FromPostSubscriptions":
                body = {**body, "subscription_id": sub}
            response = api.post(path, headers=auth, json=body)
            assert response.status_code == 200, (path, name, response.text)
    subjects = _notice_subjects(api, auth)
    assert "Your payment of $99.00 did not go through" in subjects
