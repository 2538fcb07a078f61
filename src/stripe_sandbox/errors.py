"""Stripe's error envelope: `{"error": {"type", "code", "message", "param", "decline_code"}}`.

Each class carries the HTTP status Stripe answers with, so that stripe-python raises the same
exception class it would raise against Stripe (402 → CardError, 404 → InvalidRequestError, ...).
"""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    status = 400
    type = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        decline_code: str | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.decline_code = decline_code
        if status is not None:
            self.status = status
        self.extra = extra or {}

    def body(self, request_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        if self.decline_code:
            error["decline_code"] = self.decline_code
        error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        error.update(self.extra)
        return {"error": error}


class InvalidRequestError(SandboxError):
    pass


class NotFoundError(InvalidRequestError):
    status = 404

    def __init__(self, kind: str, object_id: str, param: str = "id") -> None:
        super().__init__(
            f"No such {kind}: '{object_id}'", param=param, code="resource_missing"
        )


class UrlNotFoundError(InvalidRequestError):
    status = 404

    def __init__(self, method: str, path: str) -> None:
        super().__init__(
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/."
        )


class AuthenticationError(InvalidRequestError):
    status = 401


class CardError(SandboxError):
    status = 402
    type = "card_error"


class IdempotencyError(SandboxError):
    status = 400
    type = "idempotency_error"


class RateLimitError(InvalidRequestError):
    status = 429

    def __init__(self) -> None:
        super().__init__(
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        )


class ApiError(SandboxError):
    status = 500
    type = "api_error"
