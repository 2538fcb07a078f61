"""`POST /admin/sandbox/advance` and `/demo` refuse what they cannot do, saying what to fix."""

from __future__ import annotations

from fastapi.testclient import TestClient

from meterbill.bootstrap import build
from meterbill.config import Settings
from meterbill.entrypoints.api import create_app

from ..conftest import make_settings


def _error(answer: object) -> dict[str, str]:
    return answer.json()["error"]  # type: ignore[attr-defined,no-any-return]


def test_bad_advances_are_refused_with_the_fix(api: TestClient, auth: dict[str, str]) -> None:
    both = api.post("/admin/sandbox/advance", headers=auth,
                    json={"days": 1, "to_next_renewal": True})
    assert both.status_code == 400 and "exactly one of" in _error(both)["message"]
    assert api.post("/admin/sandbox/advance", headers=auth, json={"days": 0}).status_code == 422
    past = api.post("/admin/sandbox/advance", headers=auth, json={"to": "2020-01-01T00:00:00Z"})
    assert past.status_code == 400 and _error(past)["field"] == "to"
    nothing = api.post("/admin/sandbox/advance", headers=auth, json={"to_next_renewal": True})
    assert nothing.status_code == 400 and "create a subscription first" in _error(
        nothing)["message"]
    # These tests' customers sit on no clock (SANDBOX_TEST_CLOCKS=false): nothing to move.
    none = api.post("/admin/sandbox/advance", headers=auth, json={"days": 1})
    assert none.status_code == 409 and _error(none)["code"] == "no_test_clocks"
    assert "tenants create" in _error(none)["message"]
    demo = api.post("/admin/sandbox/demo", headers=auth, json={"tenants": 3})
    assert demo.status_code == 409 and _error(demo)["code"] == "test_clocks_off"


def test_time_does_not_move_with_a_stripe_key(database_url: str) -> None:
    settings: Settings = make_settings(database_url, stripe_secret_key="sk_test_123",
                                       stripe_api_base="http://127.0.0.1:9")
    container = build(settings)
    container.upgrade_db()
    with TestClient(create_app(container)) as api:
        answer = api.post("/admin/sandbox/advance", json={"days": 1}, headers={
            "Authorization": f"Bearer {settings.meterbill_api_token.get_secret_value()}"})  # type: ignore[union-attr]
    assert answer.status_code == 409 and _error(answer)["code"] == "not_sandbox_mode"
    container.close()
