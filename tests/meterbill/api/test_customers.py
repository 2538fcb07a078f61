"""POST /customers: created once, bad input refused, Stripe failures leave nothing behind."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterbill.bootstrap import Container
from meterbill.entrypoints.api import create_app
from stripe_sandbox import Sandbox
from stripe_sandbox.engine import Response

from .support import error_of, stripe_objects, tenant_ids

BODY = {"tenant_id": "test_tenant_001", "email": "billing@acme.test", "name": "Acme"}


def test_creates_the_customer_once(api: TestClient, auth: dict[str, str], sandbox: Sandbox,
                                   container: Container) -> None:
    first = api.post("/customers", headers=auth, json=BODY)
    again = api.post("/customers", headers=auth, json=BODY)
    assert first.status_code == again.status_code == 200
    body = first.json()
    assert body["customer_id"].startswith("cus_")
    assert body["customer_id"] == body["stripe_customer_id"] == again.json()["customer_id"]
    assert (body["tenant_id"], body["email"], body["name"]) == (
        "test_tenant_001", "billing@acme.test", "Acme")
    customers = stripe_objects(sandbox, "customer")
    assert [c["id"] for c in customers] == [body["customer_id"]]
    assert customers[0]["metadata"]["tenant_id"] == "test_tenant_001"
    assert tenant_ids(container) == ["test_tenant_001"]


BAD_BODIES = [
    ({"tenant_id": "t1", "name": "A"}, "email", "email is required."),
    ({"email": "a@b.co"}, "tenant_id", "tenant_id is required."),
    ({"tenant_id": "t1", "email": "not-an-email"}, "email", "email has an invalid format"),
    ({"tenant_id": "bad id!", "email": "a@b.co"}, "tenant_id", "tenant_id has an invalid format"),
    ({"tenant_id": "t1", "email": "a@b.co", "plan": "pro"}, "plan", "plan is not a known field."),
    ({"tenant_id": 7, "email": "a@b.co"}, "tenant_id", "tenant_id: Input should be a valid"),
]


def test_bad_fields_are_422_naming_the_field_and_write_nothing(
        api: TestClient, auth: dict[str, str], sandbox: Sandbox, container: Container) -> None:
    for body, field, message in BAD_BODIES:
        response = api.post("/customers", headers=auth, json=body)
        assert response.status_code == 422, body
        error = error_of(response)
        assert error["code"] == "invalid_request"
        assert error["field"] == field
        assert error["message"].startswith(message), (error, message)
        assert any(item["field"] == field for item in error["errors"])
    assert tenant_ids(container) == []
    assert stripe_objects(sandbox, "customer") == []


def test_malformed_json_is_400_invalid_json_and_writes_nothing(
        api: TestClient, auth: dict[str, str], sandbox: Sandbox, container: Container) -> None:
    for raw in [b'{"tenant_id": "t1", "email": ', b"{'tenant_id': 't1'}", b"{"]:
        response = api.post("/customers", content=raw,
                            headers={**auth, "Content-Type": "application/json"})
        assert response.status_code == 400, raw
        error = error_of(response)
        assert error["code"] == "invalid_json"
        assert error["message"].startswith("The request body is not valid JSON")
    assert tenant_ids(container) == []
    assert stripe_objects(sandbox, "customer") == []


@pytest.mark.parametrize(("raw", "message"), [
    (None, "A JSON request body is required."),
    (b"[1, 2]", "The request body must be a JSON object."),
])
def test_a_body_that_is_not_an_object_is_422(api: TestClient, auth: dict[str, str],
                                             raw: bytes | None, message: str) -> None:
    response = api.post("/customers", content=raw,
                        headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert error_of(response)["message"] == message


def test_stripe_unreachable_is_503_and_leaves_no_tenant(
        stripe_down: tuple[Container, Any], container: Container) -> None:
    broken, down = stripe_down
    auth = {"Authorization": f"Bearer {broken.settings.meterbill_api_token.get_secret_value()}"}
    response = TestClient(create_app(broken)).post("/customers", headers=auth, json=BODY)
    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "stripe_unavailable"
    assert "stripe_request_id" not in error  # no answer came, so there is no request id
    assert down.calls >= 1
    assert tenant_ids(container) == []


def test_a_stripe_error_answer_is_passed_on_with_its_request_id(
        api: TestClient, auth: dict[str, str], sandbox: Sandbox, container: Container) -> None:
    failed: list[str] = []

    def stripe_fails(method: str, path: str, headers: dict[str, str]) -> Response | None:
        if method == "POST" and path == "/v1/customers":
            failed.append("req_injected123")
            body = b'{"error": {"type": "api_error", "message": "Stripe had a bad day."}}'
            return Response(500, body, {"Content-Type": "application/json",
                                        "Request-Id": "req_injected123"})
        return None

    sandbox.hooks_before.append(stripe_fails)
    response = api.post("/customers", headers=auth, json=BODY)
    assert failed, "the request never reached Stripe"
    assert response.status_code in (502, 503)
    error = error_of(response)
    assert error["stripe_request_id"] == "req_injected123"
    assert tenant_ids(container) == []
    assert stripe_objects(sandbox, "customer") == []


def test_twenty_concurrent_identical_calls_make_one_stripe_customer(
        api: TestClient, auth: dict[str, str], sandbox: Sandbox, container: Container) -> None:
    start = threading.Barrier(20)
    answers: list[Any] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            start.wait()
            answers.append(api.post("/customers", headers=auth, json=BODY))
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers]
    ids = {a.json()["customer_id"] for a in answers}
    assert len(ids) == 1
    customers = [c for c in stripe_objects(sandbox, "customer")
                 if c["metadata"].get("tenant_id") == "test_tenant_001"]
    assert [c["id"] for c in customers] == list(ids)
    assert tenant_ids(container) == ["test_tenant_001"]


def test_new_customer_helper_matches_tenants_listing(
        api: TestClient, auth: dict[str, str], new_customer: Callable[..., dict[str, Any]]
) -> None:
    made = [new_customer(f"tenant_{n}", f"t{n}@acme.test") for n in range(3)]
    listed = api.get("/tenants", headers=auth).json()
    assert listed["count"] == 3
    assert {t["tenant_id"]: t["stripe_customer_id"] for t in listed["data"]} == {
        m["tenant_id"]: m["customer_id"] for m in made}
