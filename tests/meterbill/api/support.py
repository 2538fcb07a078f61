"""Helpers shared by the API tests."""

from __future__ import annotations

from typing import Any

from meterbill.bootstrap import Container


def error_of(response: Any) -> dict[str, Any]:
    """The `error` object of an error answer, after checking the envelope's shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    return error


def stripe_objects(sandbox: Any, kind: str) -> list[dict[str, Any]]:
    return list(sandbox.store.all(kind))


def tenant_ids(container: Container) -> list[str]:
    return [tenant.tenant_id for tenant in container.tenants.list()]
