"""The subscription routes: create, cancel, resume, change plan, and their refusals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterbill.bootstrap import Container
from meterbill.entrypoints.api import create_app
from stripe_sandbox import Sandbox

from .support import error_of, stripe_objects

NewCustomer = Callable[..., dict[str, Any]]


def _subscribe(api: TestClient, auth: dict[str, str], customer: dict[str, Any],
               **extra: Any) -> Any:
    body = {"customer_id": customer["customer_id"], "tenant_id": customer["tenant_id"],
            "plan_type": "pro", **extra}
    return api.post("/subscriptions", headers=auth, json=body)


def test_create_puts_the_tenant_on_the_plan(api: TestClient, auth: dict[str, str],
                                            new_customer: NewCustomer, sandbox: Sandbox) -> None:
    customer = new_customer()
    response = _subscribe(api, auth, customer, payment_method_id="pm_card_visa")
    assert response.status_code == 201, response.text
    sub = response.json()
    assert sub["id"].startswith("sub_")
    assert (sub["tenant_id"], sub["customer_id"], sub["plan_type"]) == (
        customer["tenant_id"], customer["customer_id"], "pro")
    assert sub["status"] == "trialing"  # DEFAULT_TRIAL_DAYS = 14
    assert sub["trial_end"] is not None
    assert len(sub["items"]) == 2  # the base price and the metered overage price
    in_stripe = sandbox.store.get("subscription", sub["id"])
    assert in_stripe is not None and in_stripe["customer"] == customer["customer_id"]

    summary = api.get(f"/tenants/{customer['tenant_id']}", headers=auth).json()
    assert (summary["plan"], summary["status"], summary["payment_method_on_file"]) == (
        "pro", "trialing", True)
    assert summary["subscription_id"] == sub["id"]


def test_trial_days_zero_starts_without_a_trial(api: TestClient, auth: dict[str, str],
                                                new_customer: NewCustomer) -> None:
    response = _subscribe(api, auth, new_customer(), trial_days=0,
                          payment_method_id="pm_card_visa")
    assert response.status_code == 201, response.text
    assert response.json()["trial_end"] is None


def test_unknown_plan_is_400_with_the_seeds_message_and_nothing_is_written(
        api: TestClient, auth: dict[str, str], new_customer: NewCustomer, sandbox: Sandbox,
        container: Container) -> None:
    customer = new_customer()
    response = _subscribe(api, auth, customer, plan_type="xyz",
                          payment_method_id="pm_card_visa")
    assert response.status_code == 400
    error = error_of(response)
    assert error["message"] == "Unknown plan type: xyz. Valid plans: starter, pro, enterprise"
    assert error["field"] == "plan_type"
    assert stripe_objects(sandbox, "subscription") == []
    assert container.tenants.get(customer["tenant_id"]).tenant.stripe_subscription_id is None


def test_without_a_payment_method_it_is_422_saying_how_to_add_one(
        api: TestClient, auth: dict[str, str], new_customer: NewCustomer, sandbox: Sandbox,
        container: Container) -> None:
    customer = new_customer()
    response = _subscribe(api, auth, customer)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "payment_method_required"
    assert error["field"] == "payment_method_id"
    assert "payment_method_id" in error["message"]
    assert stripe_objects(sandbox, "subscription") == []
    assert container.tenants.get(customer["tenant_id"]).tenant.stripe_subscription_id is None


@pytest.mark.parametrize("missing", ["customer_id", "plan_type", "tenant_id"])
def test_a_missing_field_is_422_naming_it(api: TestClient, auth: dict[str, str],
                                          new_customer: NewCustomer, sandbox: Sandbox,
                                          missing: str) -> None:
    customer = new_customer()
    body = {"customer_id": customer["customer_id"], "tenant_id": customer["tenant_id"],
            "plan_type": "pro", "payment_method_id": "pm_card_visa"}
    del body[missing]
    response = api.post("/subscriptions", headers=auth, json=body)
    assert response.status_code == 422
    error = error_of(response)
    assert (error["field"], error["message"]) == (missing, f"{missing} is required.")
    assert stripe_objects(sandbox, "subscription") == []


def test_an_unknown_tenant_is_404_and_nothing_is_written(
        api: TestClient, auth: dict[str, str], new_customer: NewCustomer, sandbox: Sandbox
) -> None:
    customer = new_customer()
    response = api.post("/subscriptions", headers=auth, json={
        "customer_id": customer["customer_id"], "tenant_id": "nobody_here", "plan_type": "pro",
        "payment_method_id": "pm_card_visa"})
    assert response.status_code == 404
    assert "nobody_here" in error_of(response)["message"]
    assert stripe_objects(sandbox, "subscription") == []


def test_stripe_down_is_503_and_leaves_no_subscription(
        api: TestClient, auth: dict[str, str], new_customer: NewCustomer,
        stripe_down: tuple[Container, Any], container: Container) -> None:
    customer = new_customer()
    broken, _ = stripe_down
    response = _subscribe(TestClient(create_app(broken)), auth, customer,
                          payment_method_id="pm_card_visa")
    assert response.status_code == 503
    assert error_of(response)["code"] == "stripe_unavailable"
    summary = container.tenants.get(customer["tenant_id"])
    assert summary.tenant.stripe_subscription_id is None
    assert summary.plan is None


def test_cancel_at_period_end_then_resume(api: TestClient, auth: dict[str, str],
                                          subscribed: dict[str, Any]) -> None:
    sub_id = subscribed["id"]
    canceled = api.delete(f"/subscriptions/{sub_id}", headers=auth)
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["cancel_at_period_end"] is True
    assert canceled.json()["status"] == "trialing"  # still running until the period ends
    resumed = api.post(f"/subscriptions/{sub_id}/resume", headers=auth)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["cancel_at_period_end"] is False


def test_cancel_now(api: TestClient, auth: dict[str, str], subscribed: dict[str, Any],
                    sandbox: Sandbox) -> None:
    response = api.delete(f"/subscriptions/{subscribed['id']}?at_period_end=false",
                          headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "canceled"
    assert sandbox.store.get("subscription", subscribed["id"])["status"] == "canceled"


def test_upgrade_takes_effect_now_and_downgrade_at_period_end(
        api: TestClient, auth: dict[str, str], subscribed: dict[str, Any]) -> None:
    sub_id = subscribed["id"]
    up = api.post(f"/subscriptions/{sub_id}/plan", headers=auth, json={"plan_type": "enterprise"})
    assert up.status_code == 200, up.text
    assert (up.json()["effective"], up.json()["from_plan"], up.json()["to_plan"]) == (
        "now", "pro", "enterprise")
    assert up.json()["subscription"]["plan_type"] == "enterprise"
    down = api.post(f"/subscriptions/{sub_id}/plan", headers=auth, json={"plan_type": "starter"})
    assert down.status_code == 200, down.text
    assert down.json()["effective"] == "period_end"
    assert down.json()["subscription"]["pending_plan"] == "starter"


def test_change_to_an_unknown_plan_is_400(api: TestClient, auth: dict[str, str],
                                          subscribed: dict[str, Any]) -> None:
    response = api.post(f"/subscriptions/{subscribed['id']}/plan", headers=auth,
                        json={"plan_type": "xyz"})
    assert response.status_code == 400
    assert error_of(response)["message"] == (
        "Unknown plan type: xyz. Valid plans: starter, pro, enterprise")
    summary = api.get(f"/tenants/{subscribed['tenant_id']}", headers=auth).json()
    assert summary["plan"] == "pro"


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", "/subscriptions/sub_doesnotexist"),
    ("POST", "/subscriptions/sub_doesnotexist/resume"),
])
def test_an_unknown_subscription_is_404(api: TestClient, auth: dict[str, str], method: str,
                                        path: str) -> None:
    response = api.request(method, path, headers=auth)
    assert response.status_code == 404
    assert "sub_doesnotexist" in error_of(response)["message"]


def test_a_malformed_subscription_id_is_422_naming_it(api: TestClient,
                                                      auth: dict[str, str]) -> None:
    response = api.delete("/subscriptions/cus_123", headers=auth)
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == "subscription_id"
    assert "sub_" in error["message"]


def test_send_invoice_needs_no_card_and_defaults_to_net_30(
        api: TestClient, auth: dict[str, str], new_customer: NewCustomer,
        sandbox: Sandbox) -> None:
    customer = new_customer()
    response = _subscribe(api, auth, customer, trial_days=0, collection="send_invoice")
    assert response.status_code == 201, response.text
    in_stripe = sandbox.store.get("subscription", response.json()["id"])
    assert in_stripe is not None
    assert (in_stripe["collection_method"], in_stripe["days_until_due"], in_stripe["status"]) \
        == ("send_invoice", 30, "active")
    other = new_customer("test_tenant_002")
    terms = _subscribe(api, auth, other, trial_days=0, collection="send_invoice",
                       days_until_due=45)
    assert terms.status_code == 201, terms.text
    assert sandbox.store.get("subscription", terms.json()["id"])["days_until_due"] == 45


def test_days_until_due_without_send_invoice_is_422(
        api: TestClient, auth: dict[str, str], new_customer: NewCustomer) -> None:
    response = _subscribe(api, auth, new_customer(), payment_method_id="pm_card_visa",
                          days_until_due=30)
    assert response.status_code == 422
