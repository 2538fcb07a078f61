"""Logs: one JSON object a line with LOG_FORMAT=json, the request id on every line of a request
and of a webhook's handling, and never a secret or a card number."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from meterbill.adapters.log_format import JsonFormatter, RequestIdFilter, TextFormatter, mask
from meterbill.bootstrap import Container
from meterbill.entrypoints.api import create_app
from meterbill.ports.log_context import bound


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root, stripe_log = logging.getLogger(), logging.getLogger("stripe")
    old_levels = root.level, stripe_log.level  # `serve` quiets stripe-python's lines
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    stripe_log.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_levels[0])
        stripe_log.setLevel(old_levels[1])


def _records(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_every_line_of_a_request_carries_its_id(container: Container, auth: dict[str, str],
                                                lines: io.StringIO) -> None:
    with TestClient(create_app(container)) as api:
        tenant = api.post("/customers", headers={**auth, "X-Request-Id": "support-42"},
                          json={"tenant_id": "acme", "email": "ops@acme.test"})
        assert tenant.headers["x-request-id"] == "support-42"
        lines.truncate(0)
        lines.seek(0)
        answer = api.post("/subscriptions", headers={**auth, "X-Request-Id": "support-43"},
                          json={"tenant_id": "acme", "plan_type": "starter",
                                "customer_id": tenant.json()["stripe_customer_id"],
                                "payment_method_id": "pm_card_visa", "trial_days": 0})
        assert answer.status_code in (200, 201), answer.text
        # The server's lines (stripe-python logs each call it makes for the request); the
        # test client's own lines (httpx) are outside the request.
        mine = [r for r in _records(lines) if r["logger"] != "httpx"]
        assert len(mine) >= 4
        assert {r["request_id"] for r in mine} == {"support-43"}
        assert all({"time", "level", "logger", "message"} <= set(r) for r in mine)
        fresh = api.get("/health")
        assert fresh.headers["x-request-id"].startswith("req_")
        bad = api.get("/health", headers={"X-Request-Id": "no spaces or <tags> allowed"})
        assert bad.headers["x-request-id"].startswith("req_")


def test_work_bound_to_an_id_and_secrets_masked(lines: io.StringIO) -> None:
    log = logging.getLogger("meterbill.test")
    with bound("evt_123"):
        log.warning("charging 4242 4242 4242 4242 with sk_test_%s and whsec_%s", "abcd1234",
                    "zzzz9999")
    log.info("invoice total 1764000000000 cents at 1764000000")  # not cards: no Luhn match
    first, second = _records(lines)
    assert first["request_id"] == "evt_123" and second["request_id"] is None
    assert first["message"] == "charging [card] with [secret] and [secret]"
    assert second["message"] == "invoice total 1764000000000 cents at 1764000000"
    assert mask("pk_live_abcdef") == "[secret]"
    record = logging.LogRecord("meterbill", logging.INFO, __file__, 1, "card 4000056655665556",
                               None, None)
    RequestIdFilter().filter(record)
    assert TextFormatter().format(record).endswith("[-]: card [card]")
