"""The gateway: the client bootstrap builds, idempotency keys on the wire, error mapping."""

from __future__ import annotations

import pytest
import stripe

from meterbill.adapters.stripe_gateway import API_VERSION, translate
from meterbill.bootstrap import Container
from meterbill.domain.errors import (
    Conflict,
    StripeCardError,
    StripeFailure,
    StripeInvalidRequest,
    StripeNotFound,
    StripeUnavailable,
)
from stripe_sandbox import Sandbox
from stripe_sandbox.faults import install

HEADERS = {"request-id": "req_abc123"}


@pytest.mark.parametrize("error, kind, status, code", [
    (stripe.CardError("Your card was declined.", "payment_method", "card_declined",
                      headers=HEADERS), StripeCardError, 402, "card_error"),
    (stripe.InvalidRequestError("No such customer: 'cus_x'", "id", "resource_missing",
                                http_status=404, headers=HEADERS), StripeNotFound, 404,
     "stripe_resource_missing"),
    (stripe.InvalidRequestError("Invalid integer", "amount", http_status=400,
                                headers=HEADERS), StripeInvalidRequest, 502,
     "stripe_invalid_request"),
    (stripe.RateLimitError("Too many requests", http_status=429, headers=HEADERS),
     StripeUnavailable, 503, "stripe_unavailable"),
    (stripe.APIConnectionError("Connection refused", headers=HEADERS), StripeUnavailable, 503,
     "stripe_unavailable"),
    (stripe.APIError("Internal error", http_status=500, headers=HEADERS), StripeUnavailable,
     503, "stripe_unavailable"),
    (stripe.AuthenticationError("Invalid API Key", http_status=401, headers=HEADERS),
     StripeFailure, 502, "stripe_authentication"),
])
def test_stripe_errors_become_ours_with_the_request_id(
        error: stripe.StripeError, kind: type, status: int, code: str) -> None:
    ours = translate(error, "do something")
    assert type(ours) is kind
    assert (ours.status, ours.code) == (status, code)
    assert ours.details["stripe_request_id"] == "req_abc123"
    assert "do something" in ours.message
    assert "Request req_" not in ours.message  # the id is a field, not noise in the text


def test_idempotency_mismatch_is_a_conflict() -> None:
    ours = translate(stripe.IdempotencyError("Keys for idempotent requests...", headers=HEADERS),
                     "create the customer")
    assert isinstance(ours, Conflict) and ours.status == 409
    assert ours.details["stripe_request_id"] == "req_abc123"


def test_real_sandbox_error_keeps_stripes_request_id(container: Container) -> None:
    with pytest.raises(StripeNotFound) as caught:
        container.gateway.retrieve_customer("cus_doesnotexist")
    assert caught.value.request_id and caught.value.request_id.startswith("req_")
    assert caught.value.details.get("stripe_param") == "id"


def test_client_pins_the_api_version_and_sends_our_idempotency_key(
        container: Container, sandbox: Sandbox) -> None:
    seen: list[dict[str, str]] = []

    def spy(method: str, path: str, headers: dict[str, str]) -> None:
        if method == "POST":
            seen.append(headers)

    sandbox.hooks_before.append(spy)
    first = container.gateway.create_customer(tenant_id="t1", email="a@t1.test", name=None,
                                              idempotency_key="customer:t1")
    second = container.gateway.create_customer(tenant_id="t1", email="a@t1.test", name=None,
                                               idempotency_key="customer:t1")
    assert first.id == second.id  # replayed, not created twice
    assert [h["idempotency-key"] for h in seen] == ["customer:t1", "customer:t1"]
    assert {h["stripe-version"] for h in seen} == {API_VERSION}
    assert API_VERSION == stripe.api_version  # the version stripe-python 16 is typed for


def test_a_lost_answer_is_retried_safely_with_the_same_key(
        container: Container, sandbox: Sandbox, stripe_client: stripe.StripeClient) -> None:
    """Stripe created the customer but the answer never arrived: the retry must not duplicate."""
    faults = install(sandbox)
    faults.configure(drop_after_rate=1.0, paths=("/v1/customers",))
    with pytest.raises(StripeUnavailable):
        container.customers.ensure_customer("lost", "a@lost.test", None)
    with container.db.session() as session:
        from meterbill.adapters.db.repositories import TenantRepository

        assert TenantRepository(session).get("lost") is None
    faults.configure(drop_after_rate=0.0)
    # Make the search miss, as Stripe's lagging search index would right after the create.
    container.gateway.search_customer_by_tenant = lambda _: None  # type: ignore[method-assign]
    view = container.customers.ensure_customer("lost", "a@lost.test", None)
    customers = stripe_client.v1.customers.list().data
    assert [c.id for c in customers] == [view.stripe_customer_id]
