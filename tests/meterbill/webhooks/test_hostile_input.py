"""Hostile input to `POST /webhooks/stripe`: never a 5xx, never a stored row for a refusal.

Bodies that cannot be verified (not UTF-8, odd headers) and validly signed bodies whose shape is
not a Stripe event are each answered 400 with one log line (no traceback, no payload). A seeded
fuzz run throws random bytes, random headers and signed random JSON at the endpoint.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents
from meterbill.entrypoints.api import create_app
from meterbill.entrypoints.api.webhooks import install
from meterbill.ports.webhooks import InvalidSignature, parse_event

from .conftest import inbox_rows, sign

URL = "/webhooks/stripe"
MARKER = "payload_marker_never_logged"


@pytest.fixture
def api(container: Container, hooks: WebhookComponents) -> Iterator[TestClient]:
    container.webhooks = hooks  # type: ignore[attr-defined]
    app = create_app(container)
    install(app, container)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def envelope(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "evt_hostile_1", "object": "event", "type": "product.created",
        "api_version": "2026-10-28.endive", "created": int(time.time()), "livemode": False,
        "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
        "data": {"object": {"id": "prod_x", "object": "product", "name": MARKER}}}
    for key, value in changes.items():
        if value is _DROP:
            event.pop(key, None)
        else:
            event[key] = value
    return event


_DROP = object()


def _post(api: TestClient, body: bytes, headers: dict[str, str] | list[tuple[str, str]]) -> Any:
    """POST with the header values as raw bytes: latin-1 where it can, else UTF-8 (as a
    client may send them), so that any text goes out unchanged by the HTTP client."""
    pairs = headers.items() if isinstance(headers, dict) else headers
    raw = [(name.encode(), _header_bytes(value)) for name, value in pairs]
    return api.post(URL, content=body, headers=raw)


def _header_bytes(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace")


def _refused_quietly(caplog: pytest.LogCaptureFixture) -> None:
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert "refused" in records[0].getMessage()
    assert records[0].exc_info is None and MARKER not in caplog.text


@pytest.mark.parametrize("body", [b"\xff\xfe\x00garbage", b'{"id": "evt_\xc3"}',
                                  "é".encode("latin-1"), b"\xed\xa0\x80"])
def test_a_body_that_is_not_utf8_is_400_whatever_the_signature(
        api: TestClient, container: Container, caplog: pytest.LogCaptureFixture,
        body: bytes) -> None:
    answer = _post(api, body, {"Stripe-Signature": "t=1,v1=0"})
    assert answer.status_code == 400
    assert inbox_rows(container) == []
    _refused_quietly(caplog)


@pytest.mark.parametrize("header", ["t=1,v1=\u00e9", "t=\u00b2,v1=0", "t=1,v1=0\u00ff,v1=1"])
def test_a_signature_header_that_is_not_ascii_is_400(
        api: TestClient, container: Container, caplog: pytest.LogCaptureFixture,
        header: str) -> None:
    body = json.dumps(envelope()).encode()
    answer = _post(api, body, [("Stripe-Signature", header)])
    assert answer.status_code == 400
    assert inbox_rows(container) == []
    _refused_quietly(caplog)


MALFORMED: dict[str, dict[str, Any]] = {
    "data_a_list": {"data": [1, 2]},
    "data_a_string": {"data": "x"},
    "data_missing": {"data": _DROP},
    "object_a_list": {"data": {"object": [MARKER]}},
    "object_missing": {"data": {}},
    "object_id_an_int": {"data": {"object": {"id": 5, "object": "product"}}},
    "object_id_too_long": {"data": {"object": {"id": "x" * 300}}},
    "object_id_a_lone_surrogate": {"data": {"object": {"id": "prod_\ud800"}}},
    "previous_attributes_a_list": {"data": {"object": {"id": "prod_x"},
                                            "previous_attributes": []}},
    "created_huge": {"created": 10**20},
    "created_negative": {"created": -1},
    "created_a_float": {"created": 1.7e9},
    "created_a_string": {"created": "1700000000"},
    "created_a_bool": {"created": True},
    "created_null": {"created": None},
    "id_an_int": {"id": 1},
    "id_a_list": {"id": ["evt_1"]},
    "id_without_evt": {"id": "in_1"},
    "id_too_long": {"id": "evt_" + "a" * 300},
    "id_with_a_surrogate": {"id": "evt_\ud800"},
    "id_with_a_newline": {"id": "evt_1\n"},
    "type_an_int": {"type": 3},
    "type_a_dict": {"type": {"a": 1}},
    "type_empty": {"type": ""},
    "type_too_long": {"type": "a." * 100},
    "type_with_controls": {"type": "invoice.paid\x00"},
    "livemode_a_string": {"livemode": "false"},
    "livemode_missing": {"livemode": _DROP},
    "object_not_event": {"object": "invoice"},
    "api_version_an_int": {"api_version": 2024},
    "pending_webhooks_negative": {"pending_webhooks": -1},
    "pending_webhooks_a_string": {"pending_webhooks": "1"},
    "request_a_list": {"request": []},
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_signed_event_of_the_wrong_shape_is_400_and_not_stored(
        api: TestClient, container: Container, caplog: pytest.LogCaptureFixture,
        case: str) -> None:
    body = json.dumps(envelope(**MALFORMED[case])).encode()
    answer = _post(api, body, {"Stripe-Signature": sign(body)})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_event"
    assert MARKER not in answer.text
    assert inbox_rows(container) == []
    _refused_quietly(caplog)


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 50_000, b"1" * 5000, b"NaN",
                                  b"\xef\xbb\xbf{}", b"", b"null", b'"evt_1"', b"[]"])
def test_a_signed_body_that_is_not_an_object_is_400(
        api: TestClient, container: Container, caplog: pytest.LogCaptureFixture,
        body: bytes) -> None:
    answer = _post(api, body, {"Stripe-Signature": sign(body)})
    assert answer.status_code == 400
    assert inbox_rows(container) == []
    _refused_quietly(caplog)


def test_a_stripe_event_still_parses() -> None:
    event = parse_event(json.dumps(envelope(request="req_old_style")).encode())
    assert (event.id, event.type, event.object_id) == ("evt_hostile_1", "product.created",
                                                       "prod_x")
    no_id = envelope(data={"object": {"object": "balance"}, "previous_attributes": {"a": 1}},
                     api_version=None, request=None, pending_webhooks=_DROP)
    assert parse_event(json.dumps(no_id)).object_id is None
    with pytest.raises(InvalidSignature):
        parse_event(b"\xff")


# --- the fuzz run -------------------------------------------------------------------------------

SEED = 20260518
CASES = 1500  # 500 of each kind; about two seconds


def _random_text(rng: random.Random, size: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz_.0123456789 evt_ \"\\\x00\x1f\u00e9\u2028\U0001f600"
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, size)))
    if rng.random() < 0.1:
        text += "\ud83d"  # a lone surrogate (JSON may carry one escaped)
    return text


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "big", "float", "bool", "null", "str"]
    if depth < 4:
        kinds += ["list", "dict"]
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(-(2**31), 2**31)
    if kind == "big":
        return rng.choice([10**20, -(10**20), 2**63, 2**64 + 1, 10**300])
    if kind == "float":
        return rng.choice([0.5, -1e308, 1e308, float("inf"), float("nan"), 1.7e9])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "str":
        return _random_text(rng, 20)
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_random_text(rng, 8): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


_GOOD: dict[str, Any] = {
    "id": lambda rng: f"evt_fuzz_{rng.randrange(10**9)}", "object": lambda rng: "event",
    "type": lambda rng: rng.choice(["product.created", "invoice.paid", "customer.deleted"]),
    "api_version": lambda rng: "2026-10-28.endive", "created": lambda rng: int(time.time()),
    "livemode": lambda rng: False, "pending_webhooks": lambda rng: 1,
    "request": lambda rng: {"id": None, "idempotency_key": None},
    "data": lambda rng: {"object": {"id": f"prod_{rng.randrange(1000)}", "object": "product"}},
}


def _stripe_like(rng: random.Random) -> Any:
    """A Stripe envelope with some fields of the wrong type, missing, or nested wrongly."""
    event = {key: make(rng) for key, make in _GOOD.items()}
    for key in rng.sample(sorted(event), rng.randint(0, 3)):
        roll = rng.random()
        if roll < 0.2:
            del event[key]
        elif roll < 0.4 and key == "data":
            event[key] = {"object": _random_value(rng),
                          "previous_attributes": _random_value(rng)}
        elif roll < 0.5 and key == "data":
            event[key] = {"object": {"id": _random_value(rng), "object": "product"}}
        else:
            event[key] = _random_value(rng)
    return event if rng.random() < 0.95 else [event]


def _headers(rng: random.Random, body: bytes) -> list[tuple[str, str]]:
    choices = [
        lambda: [],
        lambda: [("Stripe-Signature", "t=1,v1=0")],
        lambda: [("Stripe-Signature", _random_text(rng, 40))],
        lambda: [("Stripe-Signature", "".join(chr(rng.randint(0x20, 0xFF))
                                               for _ in range(rng.randint(0, 60))))],
        lambda: [("Stripe-Signature", f"t={rng.choice(['', '-1', '1e9', str(10**30)])},"
                                      f"v1={rng.choice(['', 'z', '0' * 64])},v0=1")],
        lambda: [("Stripe-Signature", sign(b"{}"))],  # genuine, but for another body
        lambda: [("Content-Length", rng.choice(["-1", "abc", "99999999999999999999"]))],
        lambda: [("Content-Type", _random_text(rng, 20))],
    ]
    return rng.choice(choices)()


def test_fuzz_the_endpoint_never_errs_and_stores_only_what_it_accepts(
        api: TestClient, container: Container) -> None:
    rng = random.Random(SEED)
    accepted: set[str] = set()
    started = time.monotonic()
    for n in range(CASES):
        kind = n % 3
        if kind == 0:  # random bytes, random headers
            body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
            headers = _headers(rng, body)
        else:  # validly signed random JSON: any shape, or a Stripe envelope gone wrong
            value = _random_value(rng) if kind == 1 else _stripe_like(rng)
            body = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode(
                "utf-8", "surrogatepass" if rng.random() < 0.1 else "replace")
            headers = [("Stripe-Signature", _sign_bytes(body))]
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"] \
            if n % 7 else headers
        answer = _post(api, body, headers)
        assert answer.status_code < 500, (n, answer.status_code, answer.text)
        if answer.status_code == 200:
            accepted.add(parse_event(body).id)
        else:
            assert answer.status_code in (400, 413, 422), (n, answer.status_code)
    elapsed = time.monotonic() - started
    assert {r.event_id for r in inbox_rows(container)} == accepted
    assert accepted  # some of the Stripe-like envelopes were well formed
    assert elapsed < 15, f"{CASES} cases took {elapsed:.1f}s"  # about 2s alone


def _sign_bytes(body: bytes) -> str:
    """Stripe's signature over bytes, also when they are not UTF-8 (then it cannot verify)."""
    try:
        return sign(body)
    except UnicodeDecodeError:
        return "t=1,v1=" + "0" * 64
