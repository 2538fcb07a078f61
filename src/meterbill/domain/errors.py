"""meterbill's error types. Each carries the HTTP status the API answers with.

The API turns any `MeterbillError` into `{"error": {"code", "message", "field"?, ...details}}`
in one place; services and adapters raise these and never an HTTP or Stripe exception.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar


class MeterbillError(Exception):
    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"
    # Worth retrying the same request later (Stripe down, rate limited).
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code or self.default_code
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        """The body of the API's `error` object."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        body.update(self.details)
        return body

    def __str__(self) -> str:
        return self.message


class InvalidInput(MeterbillError):
    status = 400
    default_code = "invalid_input"


class UnknownPlan(InvalidInput):
    default_code = "unknown_plan"

    def __init__(self, plan_type: str, valid: Iterable[str]) -> None:
        super().__init__(
            f"Unknown plan type: {plan_type}. Valid plans: {', '.join(valid)}",
            field="plan_type",
        )
        self.plan_type = plan_type


class PaymentMethodRequired(MeterbillError):
    status = 422
    default_code = "payment_method_required"

    def __init__(self, customer_id: str) -> None:
        super().__init__(
            f"Customer {customer_id} has no payment method on file and this meterbill requires "
            "one before a subscription starts. Add one by sending `payment_method_id` (a "
            "PaymentMethod collected with Stripe.js or a SetupIntent) with this request, or let "
            "the customer add a card in the billing portal, then try again. (Set "
            "REQUIRE_PAYMENT_METHOD=false to allow trials without a card.)",
            field="payment_method_id",
        )


class NotFound(MeterbillError):
    status = 404
    default_code = "not_found"


class Conflict(MeterbillError):
    status = 409
    default_code = "conflict"


class ConfigurationError(MeterbillError):
    """meterbill is set up wrongly (bad plans file, catalog not synced): an operator must act."""

    status = 500
    default_code = "configuration_error"


class StripeFailure(MeterbillError):
    """Stripe refused or failed a request; `details["stripe_request_id"]` says which one."""

    status = 502
    default_code = "stripe_error"

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        stripe_code: str | None = None,
        field: str | None = None,
        code: str | None = None,
    ) -> None:
        details: dict[str, Any] = {"stripe_request_id": request_id}
        if stripe_code:
            details["stripe_code"] = stripe_code
        super().__init__(message, field=field, code=code, details=details)

    @property
    def request_id(self) -> str | None:
        value = self.details.get("stripe_request_id")
        return value if isinstance(value, str) else None


class StripeCardError(StripeFailure):
    """The customer's card was declined: the customer must act, not the operator."""

    status = 402
    default_code = "card_error"


class StripeInvalidRequest(StripeFailure):
    """Stripe rejected our parameters (a bug, or an id that belongs to someone else)."""

    default_code = "stripe_invalid_request"


class StripeNotFound(StripeInvalidRequest):
    status = 404
    default_code = "stripe_resource_missing"


class StripeUnavailable(StripeFailure):
    """Stripe could not be reached, answered 5xx or rate limited us: retry later."""

    status = 503
    default_code = "stripe_unavailable"
    retryable = True
