"""The tenant routes, and the error envelope for what no route handles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterbill.bootstrap import Container
from meterbill.domain.errors import ConfigurationError
from meterbill.entrypoints.api import create_app

from .support import error_of


def test_tenant_summary_before_any_subscription(
        api: TestClient, auth: dict[str, str], new_customer: Callable[..., dict[str, Any]]
) -> None:
    customer = new_customer("acme_1", "ops@acme.test")
    response = api.get("/tenants/acme_1", headers=auth)
    assert response.status_code == 200
    summary = response.json()
    assert summary["tenant"]["stripe_customer_id"] == customer["customer_id"]
    assert summary["plan"] is None
    assert summary["payment_method_on_file"] is False
    assert summary["access"] in ("full", "reduced", "none")


def test_tenants_list_is_empty_at_first(api: TestClient, auth: dict[str, str]) -> None:
    assert api.get("/tenants", headers=auth).json() == {"data": [], "count": 0}


def test_an_unknown_tenant_is_404(api: TestClient, auth: dict[str, str]) -> None:
    response = api.get("/tenants/nobody_here", headers=auth)
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "unknown_tenant"
    assert "nobody_here" in error["message"]


def test_a_malformed_tenant_id_is_422(api: TestClient, auth: dict[str, str]) -> None:
    response = api.get("/tenants/-leading-dash", headers=auth)
    assert response.status_code == 422
    assert error_of(response)["field"] == "tenant_id"


def test_an_unknown_route_is_404_in_the_envelope(api: TestClient, auth: dict[str, str]) -> None:
    response = api.get("/invoices", headers=auth)
    assert response.status_code == 404
    assert error_of(response) == {"code": "not_found", "message": "No such route: GET /invoices"}


def test_a_wrong_method_is_405_in_the_envelope(api: TestClient, auth: dict[str, str]) -> None:
    response = api.put("/customers", headers=auth, json={})
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_an_unexpected_error_is_500_without_internals(
        container: Container, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def explode() -> list[Any]:
        raise RuntimeError("password=hunter2 in /srv/secret/path")

    monkeypatch.setattr(container.tenants, "list", explode)
    client = TestClient(create_app(container), raise_server_exceptions=False)
    response = client.get("/tenants", headers=auth)
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal_error"
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    assert error["incident_id"] in error["message"]
    assert error["incident_id"] in caplog.text and "hunter2" in caplog.text  # in the log only


def test_a_meterbill_error_keeps_its_own_status_and_code(
        container: Container, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    def not_synced() -> list[Any]:
        raise ConfigurationError("The catalog is not synced: run `meterbill catalog sync`.")

    monkeypatch.setattr(container.tenants, "list", not_synced)
    response = TestClient(create_app(container)).get("/tenants", headers=auth)
    assert response.status_code == 500
    assert error_of(response) == {
        "code": "configuration_error",
        "message": "The catalog is not synced: run `meterbill catalog sync`.",
    }
