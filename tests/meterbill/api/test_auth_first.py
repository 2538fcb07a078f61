"""The API token is checked before a request's body is read.

FastAPI reads and validates a body before it runs a route's dependencies, so a request with no
token used to be answered about its body (400 `invalid_json`) rather than its token, after the
whole body had been read. Now a protected route answers 401 at once; public routes, unknown
paths and requests with the token behave as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from ..conftest import API_TOKEN
from .support import error_of

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
JSON = {"Content-Type": "application/json"}


def _assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    error = error_of(response)
    assert error["code"] == "unauthorized"
    assert "Authorization: Bearer" in error["message"]


def test_no_token_and_malformed_json_is_401_not_400(api: TestClient) -> None:
    for path in ("/customers", "/subscriptions", "/dunning/process", "/usage/report",
                 "/usage/events", "/subscriptions/sub_123/plan"):
        _assert_unauthorized(api.post(path, content=b'{"tenant_id": ', headers=JSON))
    wrong = api.post("/customers", content=b"not json", headers={
        **JSON, "Authorization": "Bearer wrong"})
    assert wrong.status_code == 401 and error_of(wrong)["message"] == "Invalid API token."


def test_no_token_and_a_large_body_is_401(api: TestClient) -> None:
    big = b'{"tenant_id": "' + b"x" * (8 * 1024 * 1024) + b'"}'
    _assert_unauthorized(api.post("/customers", content=big, headers=JSON))


def _call(app: FastAPI, method: str, path: str, headers: dict[str, str],
          body: bytes) -> tuple[int, dict[str, str], int]:
    """One request straight through ASGI: (status, headers, times the body was asked for)."""
    asked = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "server": ("test", 80),
             "client": ("127.0.0.1", 1234), "state": {},
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], response_headers, asked


def test_the_body_of_a_request_without_a_token_is_never_read(api: TestClient) -> None:
    app = api.app
    assert isinstance(app, FastAPI)
    declared = {**JSON, "Content-Length": str(60 * 1024 * 1024)}  # 60 MB announced
    status, headers, asked = _call(app, "POST", "/customers", declared, b"{")
    assert (status, headers["www-authenticate"], asked) == (401, "Bearer", 0)
    # With the token the same request is read (and refused for its body), as before.
    status, _, asked = _call(app, "POST", "/customers", {**JSON, **AUTH}, b"{")
    assert (status, asked) == (400, 1)


def test_public_routes_unknown_paths_and_tokens_behave_as_before(api: TestClient) -> None:
    assert api.get("/health").status_code == 200
    assert api.get("/openapi.json").status_code == 200
    assert api.get("/docs").status_code == 200
    # The portal link is authenticated by its own signature, not by the API token.
    assert api.get("/billing/portal/test_tenant_001").status_code != 401
    unknown = api.post("/no-such-route", content=b"{", headers=JSON)
    assert unknown.status_code == 404
    # A wrong method on a protected path needs the token before it is told so.
    _assert_unauthorized(api.get("/customers"))
    assert api.get("/customers", headers=AUTH).status_code == 405
    malformed = api.post("/customers", content=b'{"tenant_id": ', headers={**JSON, **AUTH})
    assert malformed.status_code == 400 and error_of(malformed)["code"] == "invalid_json"
