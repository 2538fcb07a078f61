"""Request bodies and path/query constraints of the HTTP API.

The seeds' bodies keep their field names. Shapes are checked here (a 422 naming the field);
meaning (is `pro` a plan, does the tenant exist) is the services' job. Unknown fields are
refused so that a typo such as `plan` for `plan_type` fails loudly instead of being ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Path, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, model_validator

from meterbill.services.billing.customers import TENANT_ID
from meterbill.services.billing.subscriptions import MAX_TRIAL_DAYS

# The services' own rule, so that the API and the CLI accept exactly the same tenant ids.
TENANT_ID_PATTERN = TENANT_ID.pattern
# Deliberately simple: one @, no spaces, a dot in the domain. Stripe and the mail provider
# are the real judges; this only catches obvious mistakes without a new dependency.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
CUSTOMER_ID_PATTERN = r"^cus_[A-Za-z0-9]+$"
PAYMENT_METHOD_PATTERN = r"^pm_[A-Za-z0-9_]+$"
SUBSCRIPTION_ID_PATTERN = r"^sub_[A-Za-z0-9]+$"

TenantId = Annotated[str, Field(pattern=TENANT_ID_PATTERN, examples=["test_tenant_001"])]
PlanType = Annotated[str, Field(min_length=1, max_length=64, examples=["pro"],
                                description="A plan of the catalog: starter, pro, enterprise.")]

SubscriptionIdPath = Annotated[
    str, Path(pattern=SUBSCRIPTION_ID_PATTERN, description="Stripe subscription id (sub_...).")
]
TenantIdPath = Annotated[str, Path(pattern=TENANT_ID_PATTERN)]


class _ExactJsonRequest(Request):
    """Decodes JSON numbers with a fraction or exponent as Decimal: 99.10 stays 99.10."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_float=Decimal)
        return self._json


class ExactJsonRoute(APIRoute):
    """A route whose body is decoded without floats, for money in a currency's major unit."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(_ExactJsonRequest(request.scope, request.receive))

        return exact


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CustomerCreate(_Body):
    tenant_id: TenantId
    email: str = Field(pattern=EMAIL_PATTERN, max_length=254, examples=["billing@acme.test"])
    name: str | None = Field(default=None, max_length=256, examples=["Acme Inc."])


class SubscriptionCreate(_Body):
    customer_id: str = Field(pattern=CUSTOMER_ID_PATTERN, examples=["cus_123"])
    plan_type: PlanType
    tenant_id: TenantId
    trial_days: int | None = Field(
        default=None, ge=0, le=MAX_TRIAL_DAYS,
        description="Days of free trial; omitted = DEFAULT_TRIAL_DAYS (14). 0 = no trial.",
    )
    payment_method_id: str | None = Field(
        default=None, pattern=PAYMENT_METHOD_PATTERN, examples=["pm_card_visa"],
        description="Attached to the customer and made the subscription's default.",
    )
    collection: Literal["charge_automatically", "send_invoice"] = Field(
        default="charge_automatically",
        description="`send_invoice`: invoices are emailed with payment terms (no card needed), "
                    "paid on their hosted page; `charge_automatically`: the card is charged.",
    )
    days_until_due: int | None = Field(
        default=None, ge=0, le=365,
        description="Payment terms of emailed invoices in days; default 30 with send_invoice.",
    )

    @model_validator(mode="after")
    def _terms_need_send_invoice(self) -> SubscriptionCreate:
        if self.days_until_due is not None and self.collection != "send_invoice":
            raise ValueError("days_until_due needs \"collection\": \"send_invoice\"")
        return self


class PlanChange(_Body):
    plan_type: PlanType


class ErrorDetail(BaseModel):
    code: str = Field(examples=["unknown_plan"])
    message: str = Field(examples=["Unknown plan type: xyz. Valid plans: starter, pro, enterprise"])
    field: str | None = Field(default=None, examples=["plan_type"])
    stripe_request_id: str | None = Field(default=None, description="When Stripe failed.")


class ErrorEnvelope(BaseModel):
    """Every error answer: `{"error": {"code", "message", "field"?, ...}}`."""

    error: ErrorDetail


# Documented on every protected route (OpenAPI); the bodies come from errors.py.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in [
        (400, "Bad input (unknown plan, malformed JSON: `invalid_json`)"),
        (401, "Missing or wrong API token"),
        (404, "Unknown tenant or subscription"),
        (409, "Conflict"),
        (422, "A field is missing or malformed (named in `field`)"),
        (502, "Stripe refused or failed; `stripe_request_id` says which request"),
        (503, "Stripe unreachable; retry later"),
    ]
}
