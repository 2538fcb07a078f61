"""The real app on the real container (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def new_customer(api: TestClient, auth: dict[str, str]) -> Callable[..., dict[str, Any]]:
    """POST /customers for a tenant and return the answer (asserting it worked)."""

    def create(tenant_id: str = "test_tenant_001", email: str = "billing@acme.test",
               name: str | None = "Acme") -> dict[str, Any]:
        response = api.post("/customers", headers=auth,
                            json={"tenant_id": tenant_id, "email": email, "name": name})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return create


@pytest.fixture
def subscribed(api: TestClient, auth: dict[str, str],
               new_customer: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """A tenant on the pro plan with a card on file, as POST /subscriptions answers."""
    customer = new_customer()
    response = api.post("/subscriptions", headers=auth, json={
        "customer_id": customer["customer_id"], "plan_type": "pro",
        "tenant_id": customer["tenant_id"], "payment_method_id": "pm_card_visa",
    })
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body

