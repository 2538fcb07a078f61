"""Subscription lifecycle: create, cancel, resume, change plan."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query

from ...services.billing.subscriptions import DEFAULT_DAYS_UNTIL_DUE
from .deps import ContainerDep
from .schemas import EXAMPLE_CUSTOMER_ID, PlanChange, SubscriptionCreate, SubscriptionIdPath

router = APIRouter(prefix="/subscriptions", tags=["subscriptions"])

# EXAMPLE_CUSTOMER_ID stands for the customer_id POST /customers answered.
_EXAMPLES: dict[str, Any] = {
    "card": {"summary": "Pro with a card; a DEFAULT_TRIAL_DAYS (14) trial",
             "value": {"customer_id": EXAMPLE_CUSTOMER_ID, "plan_type": "pro",
                       "tenant_id": "test_tenant_001", "payment_method_id": "pm_card_visa"}},
    "seeds": {"summary": "The seeds' body: a trial without a card (422 unless "
                         "REQUIRE_PAYMENT_METHOD=false or the customer has a card)",
              "value": {"customer_id": EXAMPLE_CUSTOMER_ID, "plan_type": "pro",
                        "tenant_id": "test_tenant_001"}},
    "invoice": {"summary": "Invoices by email, net 30: no card needed",
                "value": {"customer_id": EXAMPLE_CUSTOMER_ID, "plan_type": "enterprise",
                          "tenant_id": "test_tenant_001", "trial_days": 0,
                          "collection": "send_invoice", "days_until_due": 30}},
}


@router.post(
    "",
    status_code=201,
    summary="Subscribe a tenant to a plan",
    description=(
        "Creates a subscription with the plan's licensed base price and metered overage "
        "price. Without a trial the first invoice is charged now "
        "(`payment_behavior=allow_incomplete`): paid → `active`; declined → 402 naming the "
        "decline code, and nothing is kept; a card that needs 3-D Secure → `incomplete` with "
        "`next_action.hosted_invoice_url`, where the customer confirms and pays (Stripe ends "
        "it after 23 hours). With REQUIRE_PAYMENT_METHOD on (the default) a customer without "
        "a payment method is refused with 422."
    ),
)
def create_subscription(body: Annotated[SubscriptionCreate, Body(openapi_examples=_EXAMPLES)],
                        container: ContainerDep) -> dict[str, Any]:
    view = container.subscriptions.create(
        tenant_id=body.tenant_id,
        customer_id=body.customer_id,
        plan_type=body.plan_type,
        trial_days=body.trial_days,
        payment_method_id=body.payment_method_id,
        days_until_due=(body.days_until_due if body.days_until_due is not None
                        else DEFAULT_DAYS_UNTIL_DUE)
        if body.collection == "send_invoice" else None,
    )
    return view.to_dict()


@router.get("", summary="Subscriptions to watch",
            description="Subscriptions whose payment needs attention: `incomplete` (the first "
                        "payment awaits authentication), `past_due`, or "
                        "`trialing_without_payment_method` (the trial will end unpaid).")
def list_subscriptions(
    container: ContainerDep,
    status: Annotated[Literal["incomplete", "past_due", "trialing_without_payment_method"],
                      Query(description="Which subscriptions to list.")],
) -> dict[str, Any]:
    return {"data": [v.to_dict() for v in container.subscriptions.needing_attention(status)]}


@router.delete("/{subscription_id}", summary="Cancel a subscription")
def cancel_subscription(
    subscription_id: SubscriptionIdPath,
    container: ContainerDep,
    at_period_end: Annotated[
        bool, Query(description="true: at the end of the paid period; false: now.")
    ] = True,
) -> dict[str, Any]:
    return container.subscriptions.cancel(subscription_id, at_period_end=at_period_end).to_dict()


@router.post("/{subscription_id}/resume", summary="Undo a pending cancellation")
def resume_subscription(
    subscription_id: SubscriptionIdPath, container: ContainerDep
) -> dict[str, Any]:
    return container.subscriptions.resume(subscription_id).to_dict()


@router.post(
    "/{subscription_id}/plan",
    summary="Change plan",
    description="Upgrades take effect now, prorated; downgrades at period end (configurable), "
                "as the next phase of a Stripe subscription schedule.",
)
def change_plan(
    subscription_id: SubscriptionIdPath, body: PlanChange, container: ContainerDep
) -> dict[str, Any]:
    return container.subscriptions.change_plan(subscription_id, body.plan_type).to_dict()


@router.delete(
    "/{subscription_id}/plan",
    summary="Cancel a pending downgrade",
    description="Keeps the current plan: releases the subscription schedule that would "
                "downgrade it at the period end (409 when nothing is pending).",
)
def cancel_pending_plan(
    subscription_id: SubscriptionIdPath, container: ContainerDep
) -> dict[str, Any]:
    return container.subscriptions.cancel_pending_change(subscription_id).to_dict()
