"""`POST /usage/events` on the real app: counts, errors by index and field, status codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterbill.bootstrap import Container
from meterbill.domain.usage import MAX_BATCH

from .support import error_of

NOW = datetime.now(UTC).replace(microsecond=0)
HOUR_AGO = (NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def tenants(new_customer: Callable[..., dict[str, Any]]) -> tuple[str, str]:
    new_customer("acme", "ops@acme.test")
    new_customer("globex", "ops@globex.test")
    return "acme", "globex"


def ev(event_id: str, tenant: str = "acme", **extra: object) -> dict[str, object]:
    return {"event_id": event_id, "tenant_id": tenant, "timestamp": HOUR_AGO, **extra}


def total(container: Container, tenant: str, metric: str = "queries") -> int:
    return container.usage_store.total(tenant, metric, NOW - timedelta(days=2),
                                       NOW + timedelta(days=1))


def post(api: TestClient, auth: dict[str, str], events: object) -> Any:
    return api.post("/usage/events", headers=auth, json={"events": events})


def test_a_good_batch_is_stored_and_counted(
    api: TestClient, auth: dict[str, str], container: Container, tenants: tuple[str, str]
) -> None:
    unix = int((NOW - timedelta(minutes=30)).timestamp())
    response = post(api, auth, [
        ev("e1"),                                             # defaults: queries, 1
        ev("e2", quantity=4),
        ev("e3", tenant="globex", metric="tokens", quantity=700, timestamp=unix),
    ])
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 3, "duplicates": 0, "stored": 3, "rejected": 0,
                               "errors": []}
    assert total(container, "acme") == 5
    assert total(container, "globex", "tokens") == 700
    assert total(container, "globex") == 0


def test_a_mixed_batch_stores_the_good_and_lists_the_bad_by_index_and_field(
    api: TestClient, auth: dict[str, str], container: Container, tenants: tuple[str, str]
) -> None:
    response = post(api, auth, [
        ev("m1", quantity=2),
        ev("m2", tenant="initech"),
        ev("m3", quantity=-5),
        {"tenant_id": "acme", "timestamp": HOUR_AGO},
        ev("m5", timestamp="2020-01-01T00:00:00Z"),
        ev("m6", quantity=3),
        "not an object",
    ])
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["stored"], body["rejected"]) == (2, 0, 2, 5)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "tenant_id"), (2, "quantity"), (3, "event_id"), (4, "timestamp"), (6, None)]
    assert all(e["message"] for e in body["errors"])
    assert "Unknown tenant: initech" in body["errors"][0]["message"]
    assert total(container, "acme") == 5


def test_a_repeated_event_id_is_accepted_and_counted_once(
    api: TestClient, auth: dict[str, str], container: Container, tenants: tuple[str, str]
) -> None:
    first = post(api, auth, [ev("d1", quantity=10), ev("d2"), ev("d1", quantity=10)]).json()
    assert (first["accepted"], first["duplicates"], first["stored"]) == (3, 1, 2)
    again = post(api, auth, [ev("d1", quantity=10), ev("d3")]).json()
    assert (again["accepted"], again["duplicates"], again["stored"]) == (2, 1, 1)
    assert total(container, "acme") == 12


BAD_EVENTS: list[tuple[object, str, str]] = [
    (ev("b1", tenant="nobody"), "tenant_id", "Unknown tenant: nobody"),
    (ev("b2", quantity=-1), "quantity", "greater than 0"),
    (ev("b3", quantity=0), "quantity", "greater than 0"),
    (ev("b4", timestamp=(NOW - timedelta(days=36)).isoformat()), "timestamp", "35 days"),
    (ev("b5", timestamp=(NOW + timedelta(hours=1)).isoformat()), "timestamp", "5 minutes"),
    ({"tenant_id": "acme", "timestamp": HOUR_AGO}, "event_id", "event_id is required"),
    ({"event_id": "b7", "timestamp": HOUR_AGO}, "tenant_id", "tenant_id is required"),
    ({"event_id": "b8", "tenant_id": "acme"}, "timestamp", "timestamp is required"),
    (ev("b9", timestamp="yesterday"), "timestamp", "not ISO 8601"),
    (ev("b10", metric="bytes"), "metric", "Valid metrics"),
    (ev("b11", quantitty=3), "quantitty", "Unknown field"),
    (ev("b12", quantity=1.5), "quantity", "whole number"),
]


def test_each_kind_of_bad_event_is_reported_by_index_and_field(
    api: TestClient, auth: dict[str, str], container: Container, tenants: tuple[str, str]
) -> None:
    response = post(api, auth, [event for event, _, _ in BAD_EVENTS])
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "invalid_events"
    assert "All 12 events were rejected" in error["message"]
    assert (error["accepted"], error["rejected"], error["stored"]) == (0, len(BAD_EVENTS), 0)
    listed = error["errors"]
    assert [(e["index"], e["field"]) for e in listed] == [
        (index, field) for index, (_, field, _) in enumerate(BAD_EVENTS)]
    for problem, (_, _, hint) in zip(listed, BAD_EVENTS, strict=True):
        assert hint in problem["message"], problem
    assert container.usage_store.count_raw() == 0


def test_one_bad_event_alone_is_a_422_that_names_its_field(
    api: TestClient, auth: dict[str, str], tenants: tuple[str, str]
) -> None:
    response = post(api, auth, [ev("n1", tenant="nobody")])
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == "tenant_id"
    assert error["errors"] == [{"index": 0, "field": "tenant_id",
                                "message": error["errors"][0]["message"]}]


@pytest.mark.parametrize(("body", "field", "hint"), [
    ({"events": {"event_id": "x"}}, "events", "must be a list"),
    ({"events": "e1,e2"}, "events", "must be a list"),
    ({}, "events", "events is required"),
    ([ev("x")], None, "must be a JSON object"),
    ({"events": [], "tenant_id": "acme"}, "tenant_id", "not a known field"),
])
def test_a_body_that_is_not_a_batch_is_422(
    api: TestClient, auth: dict[str, str], body: object, field: str | None, hint: str
) -> None:
    response = api.post("/usage/events", headers=auth, json=body)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert error.get("field") == field
    assert hint in error["message"]


def test_malformed_json_is_400(api: TestClient, auth: dict[str, str]) -> None:
    response = api.post("/usage/events", headers={**auth, "Content-Type": "application/json"},
                        content=b'{"events": [')
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


def test_an_empty_batch_is_fine_and_stores_nothing(
    api: TestClient, auth: dict[str, str]
) -> None:
    response = post(api, auth, [])
    assert response.status_code == 200
    assert response.json()["accepted"] == 0


def test_more_than_10000_events_is_413_and_nothing_is_stored(
    api: TestClient, auth: dict[str, str], container: Container, tenants: tuple[str, str]
) -> None:
    response = post(api, auth, [ev(f"big{i}") for i in range(MAX_BATCH + 1)])
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "batch_too_large"
    assert (error["limit"], error["size"]) == (MAX_BATCH, MAX_BATCH + 1)
    assert "Split it" in error["message"]
    assert container.usage_store.count_raw() == 0


def test_exactly_10000_events_are_taken(
    api: TestClient, auth: dict[str, str], container: Container, tenants: tuple[str, str]
) -> None:
    response = post(api, auth, [ev(f"full{i}") for i in range(MAX_BATCH)])
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == MAX_BATCH
    assert total(container, "acme") == MAX_BATCH


def test_a_body_over_the_byte_limit_is_413_without_reading_it(
    api: TestClient, auth: dict[str, str], container: Container, tenants: tuple[str, str]
) -> None:
    api.app.state.usage_max_body_bytes = 2000  # type: ignore[attr-defined]
    body = json.dumps({"events": [ev(f"s{i}") for i in range(40)]}).encode()
    assert len(body) > 2000
    response = api.post("/usage/events", headers={**auth, "Content-Type": "application/json"},
                        content=body)
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "payload_too_large" and "2,000 bytes" in error["message"]
    small = post(api, auth, [ev("s0")])
    assert small.status_code == 200
    assert container.usage_store.count_raw() == 1


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"}])
def test_without_the_api_token_it_is_401_and_nothing_is_stored(
    api: TestClient, container: Container, tenants: tuple[str, str], headers: dict[str, str]
) -> None:
    response = api.post("/usage/events", headers=headers, json={"events": [ev("a1")]})
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert container.usage_store.count_raw() == 0
