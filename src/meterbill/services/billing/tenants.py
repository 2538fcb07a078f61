"""Tenants: the billing summary the API and CLI show, and the tenant list."""

from __future__ import annotations

from collections.abc import Collection

from ...adapters.db.models import Subscription, Tenant
from ...adapters.db.repositories import SubscriptionRepository, TenantRepository
from ...adapters.db.session import Database
from ...domain.access import AccessDecision
from ...domain.errors import NotFound
from ...ports.stripe import StripePort
from ..access.writer import TenantAccessService
from ..views import BillingSummary, TenantView


def tenant_view(row: Tenant, access: AccessDecision | None = None) -> TenantView:
    """The row as a view; with `access`, its access fields as decided now (they are the
    columns' values: the one writer wrote them from the same decision)."""
    return TenantView(
        tenant_id=row.tenant_id,
        email=row.email,
        name=row.name,
        stripe_customer_id=row.stripe_customer_id,
        stripe_subscription_id=row.stripe_subscription_id,
        current_plan=row.current_plan,
        billing_status=access.billing_status if access else row.billing_status,
        api_access_enabled=access.api_access_enabled if access else row.api_access_enabled,
        created_at=row.created_at,
    )


def unknown_tenant(tenant_id: str) -> NotFound:
    return NotFound(f"Unknown tenant: {tenant_id}. Create it first with POST /customers "
                    "(or `meterbill tenants create`).", field="tenant_id", code="unknown_tenant")


class TenantService:
    def __init__(self, db: Database, gateway: StripePort, access: TenantAccessService) -> None:
        self.db = db
        self.gateway = gateway
        self.access = access  # decides access on the stored facts, as its one writer did

    def get(self, tenant_id: str) -> BillingSummary:
        """The tenant's plan, status, period, trial end, payment method on file and access."""
        with self.db.session() as session:
            tenant = TenantRepository(session).get(tenant_id)
            if tenant is None:
                raise unknown_tenant(tenant_id)
            subscription: Subscription | None = None
            if tenant.stripe_subscription_id:
                subscription = SubscriptionRepository(session).get(tenant.stripe_subscription_id)
            # The same function on the same facts as the entitlement endpoint and the writer.
            decision = self.access.current(session, tenant)
        on_file = self._payment_method_on_file(tenant.stripe_customer_id)
        return BillingSummary(
            tenant=tenant_view(tenant, decision),
            plan=tenant.current_plan,
            status=decision.billing_status,
            current_period_start=subscription.current_period_start if subscription else None,
            current_period_end=subscription.current_period_end if subscription else None,
            trial_end=subscription.trial_end if subscription else None,
            payment_method_on_file=on_file,
            access=decision.access,
            rate_limit_multiplier=decision.rate_limit_multiplier,
            reason=decision.reason,
            dunning_state=decision.dunning_state,
            subscription_id=subscription.id if subscription else None,
            cancel_at_period_end=subscription.cancel_at_period_end if subscription else False,
            pending_plan=subscription.pending_plan if subscription else None,
        )

    def exists(self, tenant_id: str) -> bool:
        with self.db.session() as session:
            return TenantRepository(session).get(tenant_id) is not None

    def existing(self, tenant_ids: Collection[str]) -> set[str]:
        """Which of `tenant_ids` are known tenants, in one query per 500 ids."""
        with self.db.session() as session:
            return TenantRepository(session).existing_ids(tenant_ids)

    def list(self) -> list[TenantView]:
        with self.db.session() as session:
            return [tenant_view(row) for row in TenantRepository(session).all()]

    def _payment_method_on_file(self, customer_id: str | None) -> bool:
        # Asked of Stripe: cards are added through the portal and SetupIntents too, not only here.
        if not customer_id:
            return False
        customer = self.gateway.retrieve_customer(customer_id)
        if customer.default_payment_method:
            return True
        return bool(self.gateway.list_payment_method_ids(customer_id, limit=1))
