"""Request bodies and path/query constraints of the HTTP API.

The seeds' bodies keep their field names. Shapes are checked here (a 422 naming the field);
meaning (is `pro` a plan, does the tenant exist) is the services' job. Unknown fields are
refused so that a typo such as `plan` for `plan_type` fails loudly instead of being ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Path, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

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

# What the columns hold (adapters/db/models.py): Stripe ids are String(64), plan names
# String(40), and integer ids `Integer`, which is 32-bit on PostgreSQL (64-bit on SQLite).
STRIPE_ID_LENGTH = 64
PLAN_LENGTH = 40
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# Stand-ins for ids a client gets from an earlier call; they match the id patterns, and their
# names say where the real one comes from.
EXAMPLE_CUSTOMER_ID = "cus_FromPostCustomers"
EXAMPLE_SUBSCRIPTION_ID = "sub_FromPostSubscriptions"

TenantId = Annotated[str, Field(pattern=TENANT_ID_PATTERN, max_length=128,
                                examples=["test_tenant_001"])]
PlanType = Annotated[str, Field(min_length=1, max_length=PLAN_LENGTH, examples=["pro"],
                                description="A plan of the catalog: starter, pro, enterprise.")]
CustomerId = Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN, max_length=STRIPE_ID_LENGTH,
                                  examples=[EXAMPLE_CUSTOMER_ID],
                                  description="The customer_id POST /customers answered.")]
SubscriptionId = Annotated[str, Field(pattern=SUBSCRIPTION_ID_PATTERN,
                                      max_length=STRIPE_ID_LENGTH,
                                      examples=[EXAMPLE_SUBSCRIPTION_ID],
                                      description="The id POST /subscriptions answered.")]

SubscriptionIdPath = Annotated[
    str, Path(pattern=SUBSCRIPTION_ID_PATTERN, max_length=STRIPE_ID_LENGTH,
              description="Stripe subscription id (sub_...).")
]
TenantIdPath = Annotated[str, Path(pattern=TENANT_ID_PATTERN, max_length=128)]
# A row id of an `Integer` column: 1 up to what PostgreSQL's INTEGER holds, so no id in a
# path reaches the database as a number it cannot bind (2**63 was a 500 on SQLite).
RowIdPath = Annotated[int, Path(ge=1, le=INT32_MAX, description="The row's id.")]

# Dated examples are written with these stand-ins and filled in when the schema is served
# (`dated_examples`), so that an example is valid on the day it is read: usage older than 35
# days is refused.
EXAMPLE_NOW = "<example:now>"
EXAMPLE_TODAY = "<example:today>"
EXAMPLE_MONTH = "<example:this-month>"


def dated_examples(node: Any, now: datetime) -> Any:
    """`node` (an OpenAPI document or part of one), copied, with the dated stand-ins filled in
    from `now` (UTC). The input is left alone: it shares the routes' example dicts."""
    values = {EXAMPLE_NOW: now.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ"),
              EXAMPLE_TODAY: now.date().isoformat(), EXAMPLE_MONTH: now.strftime("%Y-%m")}
    if isinstance(node, str):
        return values.get(node, node)
    if isinstance(node, Mapping):
        return {key: dated_examples(value, now) for key, value in node.items()}
    if isinstance(node, list):
        return [dated_examples(value, now) for value in node]
    return node


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

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object, info: ValidationInfo) -> object:
        # PostgreSQL text cannot hold U+0000: refused here, named, rather than a 500 there.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError(f"{info.field_name} must not contain the NUL character (U+0000)")
        return value


class CustomerCreate(_Body):
    tenant_id: TenantId
    email: str = Field(pattern=EMAIL_PATTERN, max_length=254, examples=["billing@acme.test"])
    name: str | None = Field(default=None, max_length=256, examples=["Acme Inc."])


class SubscriptionCreate(_Body):
    customer_id: CustomerId
    plan_type: PlanType
    tenant_id: TenantId
    # strict, like every integer of a body: `true` is not one day.
    trial_days: int | None = Field(
        default=None, ge=0, le=MAX_TRIAL_DAYS, strict=True,
        description="Days of free trial; omitted = DEFAULT_TRIAL_DAYS (14). 0 = no trial.",
    )
    payment_method_id: str | None = Field(
        default=None, pattern=PAYMENT_METHOD_PATTERN, max_length=STRIPE_ID_LENGTH,
        examples=["pm_card_visa"],
        description="Attached to the customer and made the subscription's default.",
    )
    collection: Literal["charge_automatically", "send_invoice"] = Field(
        default="charge_automatically",
        description="`send_invoice`: invoices are emailed with payment terms (no card needed), "
                    "paid on their hosted page; `charge_automatically`: the card is charged.",
    )
    days_until_due: int | None = Field(
        default=None, ge=0, le=365, strict=True,
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
