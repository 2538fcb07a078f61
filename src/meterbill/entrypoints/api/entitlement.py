"""Access for the SaaS and dunning for operators.

- `GET /tenants/{id}/entitlement`: what the tenant may use now (`access` full | reduced | none,
  `rate_limit_multiplier`, `reason`, `plan`, `included`, `used_this_period`), cheap enough to
  ask on every request; with an `ETag`, and 304 when `If-None-Match` names it.
- `GET /tenants/{id}/timeline`: every change of the tenant's dunning state and its cause.
- `POST /dunning/process` `{tenant_id, failure_count, invoice_amount}`: the seeds' manual
  trigger; applies the policy's step for `failure_count` (0 restores), recorded as `manual`.
  `invoice_amount` is in the currency's major unit as the seeds mean it (99.00 = $99.00),
  read from the JSON text exactly (never through a float) and turned into integer cents here;
  `invoice_amount_cents` says the same in cents.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Response
from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from meterbill.domain.money import MAX_MINOR_AMOUNT, parse_amount, to_minor_units

from .deps import ContainerDep
from .schemas import ExactJsonRoute, TenantId, TenantIdPath, _Body

# Exact JSON numbers for the amounts of POST /dunning/process (the GET routes have no body).
router = APIRouter(route_class=ExactJsonRoute)


class DunningProcess(_Body):
    tenant_id: TenantId
    # strict: `true` is not one failure.
    failure_count: int = Field(ge=0, le=1000, strict=True, examples=[1],
                               description="Failed payment attempts; 0 restores the tenant.")
    # Before the amounts: their checks need it.
    currency: str = Field(default="usd", pattern=r"^[a-z]{3}$", examples=["usd"])
    invoice_amount: Decimal | None = Field(
        default=None, examples=[99.00],
        description="The unpaid amount in the currency's major unit: 99.00 = $99.00, 99.5 = "
                    "$99.50; at most as many decimals as the currency has (2 for usd, 0 for "
                    "jpy). Send this or invoice_amount_cents.")
    invoice_amount_cents: int | None = Field(
        default=None, ge=0, le=MAX_MINOR_AMOUNT, strict=True, examples=[9900],
        description="The same amount as an integer in the currency's minor unit (9900 = "
                    "$99.00), instead of invoice_amount.")
    invoice_id: str | None = Field(
        default=None, max_length=64,
        description="Names the notices' once-only key; without it, manual steps share one.")
    _cents: int = PrivateAttr(default=0)

    @field_validator("invoice_amount", mode="before")
    @classmethod
    def _exact_amount(cls, value: object) -> object:
        if value is None:
            return None
        try:
            return parse_amount(value, what="invoice_amount")
        except ValueError as error:
            raise _amount_error(str(error)) from None

    @model_validator(mode="after")
    def _one_amount(self) -> DunningProcess:
        if self.invoice_amount is not None and self.invoice_amount_cents is not None:
            raise _amount_error("Send invoice_amount (e.g. 99.00) or invoice_amount_cents "
                                "(e.g. 9900), not both.")
        if self.invoice_amount_cents is not None:
            self._cents = self.invoice_amount_cents
        elif self.invoice_amount is None:
            raise _amount_error("invoice_amount is required: the unpaid amount in the "
                                "currency's major unit (99.00 = $99.00), or "
                                "invoice_amount_cents as an integer (9900).")
        else:
            try:
                self._cents = to_minor_units(self.invoice_amount, self.currency,
                                             what="invoice_amount")
            except ValueError as error:
                raise _amount_error(f"{error}; send invoice_amount_cents for an amount in "
                                    "the minor unit.") from None
        return self

    @property
    def amount_cents(self) -> int:
        """The amount in the currency's minor unit, as the dunning service takes it."""
        return self._cents


def _amount_error(message: str) -> PydanticCustomError:
    # `field` in the context names the field for errors.py even from the model-level check;
    # the message goes in the context too, so braces of an echoed value are not a template.
    return PydanticCustomError("invalid_amount", "{message}",
                               {"field": "invoice_amount", "message": message})


_DUNNING_EXAMPLES: dict[str, Any] = {
    "dollars": {"summary": "The seeds' example: $99.00 unpaid after one failed attempt",
                "value": {"tenant_id": "test_tenant_001", "failure_count": 1,
                          "invoice_amount": 99.00}},
    "cents": {"summary": "The same amount in cents",
              "value": {"tenant_id": "test_tenant_001", "failure_count": 1,
                        "invoice_amount_cents": 9900}},
    "restore": {"summary": "Paid: restore full access",
                "value": {"tenant_id": "test_tenant_001", "failure_count": 0,
                          "invoice_amount": 99.00}},
}


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison: `*`, or any listed tag equal to ours (W/ ignored)."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return any(t == "*" or t.removeprefix("W/") == etag for t in tags)


@router.get(
    "/tenants/{tenant_id}/entitlement",
    tags=["entitlement"],
    summary="What the tenant may use now",
    description="From meterbill's database (and the period's usage total, cached briefly). "
                "Send the `ETag` back in `If-None-Match` to get a 304 while nothing changed.",
    responses={304: {"description": "Unchanged since the ETag you sent"}},
)
def get_entitlement(
    tenant_id: TenantIdPath, container: ContainerDep, response: Response,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Any:
    entitlement = container.entitlement.get(tenant_id)
    etag = entitlement.etag
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return entitlement.to_dict()


@router.get("/tenants/{tenant_id}/timeline", tags=["dunning"],
            summary="The tenant's dunning timeline, oldest first")
def get_timeline(
    tenant_id: TenantIdPath, container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="The newest N entries.")] = 100,
) -> dict[str, Any]:
    entries = [entry.to_dict() for entry in container.dunning.timeline(tenant_id, limit)]
    return {"tenant_id": tenant_id, "data": entries, "count": len(entries)}


@router.post("/dunning/process", tags=["dunning"],
             summary="Apply the dunning step for a failure count (operators)")
def process_dunning(
    body: Annotated[DunningProcess, Body(openapi_examples=_DUNNING_EXAMPLES)],
    container: ContainerDep,
) -> dict[str, Any]:
    result = container.dunning.process_manual(
        body.tenant_id, body.failure_count, body.amount_cents, body.currency,
        body.invoice_id)
    return result.to_dict()
