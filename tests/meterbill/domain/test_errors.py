from __future__ import annotations

import pytest

from meterbill.domain.errors import (
    Conflict,
    InvalidInput,
    MeterbillError,
    NotFound,
    PaymentMethodRequired,
    StripeCardError,
    StripeFailure,
    StripeUnavailable,
)


@pytest.mark.parametrize("error, status, code", [
    (InvalidInput("bad", field="email"), 400, "invalid_input"),
    (NotFound("gone"), 404, "not_found"),
    (Conflict("twice"), 409, "conflict"),
    (PaymentMethodRequired("cus_1"), 422, "payment_method_required"),
    (StripeFailure("x", request_id="req_1"), 502, "stripe_error"),
    (StripeCardError("declined", request_id="req_2"), 402, "card_error"),
    (StripeUnavailable("down", request_id=None), 503, "stripe_unavailable"),
])
def test_status_and_code(error: MeterbillError, status: int, code: str) -> None:
    assert (error.status, error.code) == (status, code)


def test_to_dict_carries_field_and_details() -> None:
    error = StripeFailure("Stripe said no", request_id="req_123", stripe_code="oops")
    assert error.to_dict() == {"code": "stripe_error", "message": "Stripe said no",
                               "stripe_request_id": "req_123", "stripe_code": "oops"}
    assert error.request_id == "req_123"
    assert InvalidInput("bad", field="email").to_dict() == {
        "code": "invalid_input", "message": "bad", "field": "email"}


def test_payment_method_required_says_how_to_add_one() -> None:
    error = PaymentMethodRequired("cus_1")
    assert "payment_method_id" in error.message and "cus_1" in error.message
    assert error.field == "payment_method_id"


def test_only_unavailable_is_retryable() -> None:
    assert StripeUnavailable("down").retryable
    assert not StripeCardError("declined").retryable
    assert not StripeFailure("no").retryable
