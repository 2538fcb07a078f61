"""`POST /webhooks/stripe`: what is accepted, what is refused, and that refusals store nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from meterbill.adapters.db.session import Database
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents
from meterbill.entrypoints.api import create_app
from meterbill.entrypoints.api.webhooks import RateLimiter, install

from .conftest import OLD_SECRET, SECRET, fake_event, inbox_rows, make_options, sign

URL = "/webhooks/stripe"


@pytest.fixture
def api(container: Container, hooks: WebhookComponents) -> Iterator[TestClient]:
    container.webhooks = hooks  # type: ignore[attr-defined]
    app = create_app(container)
    install(app, container)
    with TestClient(app) as client:
        yield client


def post(api: TestClient, body: bytes, signature: str | None) -> object:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return api.post(URL, content=body, headers=headers)


def test_a_signed_event_is_stored_and_handed_to_the_runner(
        api: TestClient, container: Container, hooks: WebhookComponents) -> None:
    body = fake_event("invoice.paid", {"id": "in_1", "object": "invoice", "customer": "cus_1"})
    answer = post(api, body, sign(body))
    assert answer.status_code == 200 and answer.json() == {"received": True}
    rows = inbox_rows(container)
    assert [(r.event_id, r.type, r.status, r.object_id) for r in rows] == [
        ("evt_test_000000000001", "invoice.paid", "received", "in_1")]
    assert rows[0].payload == body.decode()  # the raw body, byte for byte
    # The answer goes out at the commit; the task is handed over right after it.
    deadline = time.monotonic() + 5
    while not hooks.runner.submitted and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)
    assert hooks.runner.submitted == [rows[0].id]  # type: ignore[attr-defined]


def test_a_type_without_handler_is_stored_as_ignored_without_a_task(
        api: TestClient, container: Container, hooks: WebhookComponents) -> None:
    body = fake_event("product.created")
    assert post(api, body, sign(body)).status_code == 200
    rows = inbox_rows(container)
    assert [(r.type, r.status, r.note) for r in rows] == [
        ("product.created", "ignored", "no handler for product.created")]
    assert rows[0].handled_at is not None
    assert hooks.runner.submitted == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", ["tampered", "wrong_secret", "stale", "missing", "garbage"])
def test_bad_signatures_are_refused_and_nothing_is_stored(
        api: TestClient, container: Container, hooks: WebhookComponents,
        caplog: pytest.LogCaptureFixture, case: str) -> None:
    body = fake_event("invoice.paid", {"id": "in_secret_payload_marker", "customer": "cus_1"})
    signature: str | None = sign(body)
    if case == "tampered":
        body = body.replace(b"cus_1", b"cus_2")
    elif case == "wrong_secret":
        signature = sign(body, secret="whsec_someone_else")
    elif case == "stale":
        signature = sign(body, timestamp=int(time.time()) - 301)
    elif case == "missing":
        signature = None
    else:
        signature = "t=abc,v1=zzz"
    answer = post(api, body, signature)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_signature"
    assert inbox_rows(container) == []
    assert hooks.runner.submitted == []  # type: ignore[attr-defined]
    assert "refused" in caplog.text and "in_secret_payload_marker" not in caplog.text


def test_a_signed_body_that_is_not_an_event_is_refused(api: TestClient,
                                                         container: Container) -> None:
    body = json.dumps({"hello": "world"}).encode()
    assert post(api, body, sign(body)).status_code == 400
    assert inbox_rows(container) == []


def test_either_secret_verifies_while_a_secret_is_rolled(container: Container) -> None:
    from meterbill.adapters.stripe_events import StripeSignatureVerifier

    verifier = StripeSignatureVerifier([SECRET, OLD_SECRET])
    body = fake_event()
    assert verifier.verify(body, sign(body, OLD_SECRET)).id == "evt_test_000000000001"
    assert verifier.verify(body, sign(body, SECRET)).type == "product.created"


def test_a_repeat_answers_200_and_changes_nothing(api: TestClient, container: Container,
                                                   hooks: WebhookComponents) -> None:
    body = fake_event()
    assert post(api, body, sign(body)).status_code == 200
    before = [(r.id, r.status, r.received_at) for r in inbox_rows(container)]
    answer = post(api, body, sign(body))
    assert answer.status_code == 200 and answer.json() == {"received": True}
    assert [(r.id, r.status, r.received_at) for r in inbox_rows(container)] == before
    assert len(before) == 1


def test_a_body_over_the_limit_is_413(api: TestClient, container: Container,
                                      hooks: WebhookComponents) -> None:
    hooks.options = make_options(max_body_bytes=1000)
    body = fake_event(obj={"id": "prod_x", "object": "product", "description": "x" * 2000})
    answer = post(api, body, sign(body))
    assert answer.status_code == 413
    assert inbox_rows(container) == []


def test_database_down_answers_503_and_the_retry_lands(
        api: TestClient, container: Container, hooks: WebhookComponents) -> None:
    body = fake_event()
    working = hooks.intake.db
    # Nothing listens on port 1: every connection is refused, as with a database that is down.
    hooks.intake.db = Database("postgresql+psycopg://meterbill@127.0.0.1:1/meterbill")
    try:
        answer = post(api, body, sign(body))
    finally:
        hooks.intake.db.dispose()
        hooks.intake.db = working
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "inbox_unavailable"
    assert hooks.runner.submitted == []  # type: ignore[attr-defined]
    # Stripe delivers it again later; now it is stored.
    assert post(api, body, sign(body)).status_code == 200
    assert [r.event_id for r in inbox_rows(container)] == ["evt_test_000000000001"]


def test_rate_limit_per_source_address(api: TestClient, hooks: WebhookComponents) -> None:
    hooks.options = make_options(rate_limit_per_minute=3)
    codes = []
    for n in range(5):
        body = fake_event(event_id=f"evt_test_rate_{n}")
        codes.append(post(api, body, sign(body)).status_code)
    assert codes == [200, 200, 200, 429, 429]


def test_rate_limiter_refills_and_keeps_addresses_apart() -> None:
    limiter = RateLimiter(per_minute=60)  # one a second
    assert all(limiter.allow("10.0.0.1", now=100.0) for _ in range(60))
    assert not limiter.allow("10.0.0.1", now=100.0)
    assert limiter.allow("10.0.0.2", now=100.0)
    assert limiter.allow("10.0.0.1", now=101.5)


def test_other_requests_pass_the_webhook_middleware(api: TestClient) -> None:
    assert api.get(URL).status_code == 405  # FastAPI's own answer: the route is POST only
    assert api.get("/health").status_code == 200
    assert URL in api.get("/openapi.json").json()["paths"]  # documented by the FastAPI route


def test_the_fastapi_route_answers_the_same_without_the_middleware(
        container: Container, hooks: WebhookComponents) -> None:
    from meterbill.entrypoints.api.webhooks import router

    container.webhooks = hooks  # type: ignore[attr-defined]
    app = create_app(container)
    app.include_router(router)  # no `install`: no middleware in front of FastAPI
    with TestClient(app) as client:
        body = fake_event()
        assert post(client, body, sign(body)).status_code == 200
        assert post(client, body, "t=1,v1=bad").status_code == 400
    assert [r.event_id for r in inbox_rows(container)] == ["evt_test_000000000001"]
