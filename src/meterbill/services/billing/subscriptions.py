"""Subscription lifecycle: create, cancel, resume, change plan.

Every subscription has two items: the plan's licensed base price (quantity 1) and its metered
overage price on the `queries` meter. Stripe is the source of truth: each operation first
fetches the subscription's current state, and the local row is written only after Stripe has
answered, so a failed call leaves nothing claiming success.

Idempotency keys come from our own ids plus a counter kept in our database, so a retry of the
same operation repeats the same key while the next, different operation gets a new one:
`subscription:{tenant}:{plan}:{n}` for creates (n = subscriptions the tenant has had), and
`subscription:{id}:{operation}:r{revision}` for updates (the row's revision, bumped on every
change).

Downgrades at period end: Stripe's subscription schedules are not available in the sandbox, so a
downgrade is recorded on our row (`pending_plan`, `pending_plan_at` = the period's end) and
Stripe is left alone until the period has rolled over. `apply_due_plan_changes()` (run it from
the scheduler or after a `customer.subscription.updated`/`invoice.created` webhook) then swaps
both prices with `proration_behavior=create_prorations`: the renewal invoice billed the ending
period's usage under the old plan and the new period's base at the old price, and the proration
credits that difference on the next invoice. Until it runs, the old plan stays in force.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ...adapters.db.models import Subscription, Tenant
from ...adapters.db.notifications import new_notice_ids
from ...adapters.db.repositories import SubscriptionRepository, TenantRepository
from ...adapters.db.session import Database, DbSession
from ...domain.access import is_live
from ...domain.clock import Clock, utcnow
from ...domain.errors import (
    ConfigurationError,
    Conflict,
    InvalidInput,
    MeterbillError,
    NotFound,
    PaymentMethodRequired,
    StripeInvalidRequest,
    StripeNotFound,
)
from ...domain.plans import Catalog, Plan, plan_change_direction
from ...ports.stripe import StripePort, SubscriptionRecord
from ..access.writer import Cause, TenantAccessService
from ..views import PlanChangeView, SubscriptionView
from .customers import validate_tenant_id
from .tenants import unknown_tenant

# Stripe's longest trial.
MAX_TRIAL_DAYS = 730


@dataclass(frozen=True)
class SubscriptionPolicy:
    require_payment_method: bool = True
    downgrade_at_period_end: bool = True
    upgrade_proration: Literal["always_invoice", "create_prorations"] = "always_invoice"
    default_trial_days: int = 14


def subscription_view(row: Subscription) -> SubscriptionView:
    return SubscriptionView(
        id=row.id,
        tenant_id=row.tenant_id,
        customer_id=row.customer_id,
        plan_type=row.plan_type,
        status=row.status,
        trial_end=row.trial_end,
        current_period_start=row.current_period_start,
        current_period_end=row.current_period_end,
        cancel_at_period_end=row.cancel_at_period_end,
        items=tuple(i for i in (row.base_item_id, row.overage_item_id) if i),
        latest_invoice=row.latest_invoice,
        pending_plan=row.pending_plan,
    )


class SubscriptionService:
    def __init__(self, db: Database, gateway: StripePort, catalog: Catalog,
                 policy: SubscriptionPolicy | None = None, *, access: TenantAccessService,
                 on_notices: Callable[[Sequence[int]], object] | None = None,
                 clock: Clock = utcnow) -> None:
        self.db = db
        self.gateway = gateway
        self.catalog = catalog
        self.policy = policy or SubscriptionPolicy()
        self.access = access  # writes the tenant's access from what Stripe answered
        # Called with the ids of the notices a change recorded (a cancellation), after commit.
        self.on_notices = on_notices
        self.clock = clock  # stamps our rows' updated_at

    # --- create ------------------------------------------------------------------------------

    def create(self, tenant_id: str, customer_id: str, plan_type: str,
               trial_days: int | None = None,
               payment_method_id: str | None = None,
               days_until_due: int | None = None) -> SubscriptionView:
        """`days_until_due` set: invoices are emailed with payment terms (send_invoice), and no
        payment method is needed."""
        plan = self.catalog.get(plan_type)
        validate_tenant_id(tenant_id)
        trial = self.policy.default_trial_days if trial_days is None else trial_days
        if isinstance(trial, bool) or not isinstance(trial, int) or not (
                0 <= trial <= MAX_TRIAL_DAYS):
            raise InvalidInput(f"trial_days must be a whole number from 0 to {MAX_TRIAL_DAYS}",
                               field="trial_days")
        if payment_method_id is not None and not payment_method_id.strip():
            payment_method_id = None
        check_days_until_due(days_until_due)
        seq = self._check_tenant(tenant_id, customer_id)
        base_price, overage_price = self._price_ids(plan)
        default_pm = self._payment_method(customer_id, payment_method_id, seq) \
            if days_until_due is None or payment_method_id else None

        terms = "" if days_until_due is None else f"|net{days_until_due}"
        fingerprint = hashlib.sha256(f"{trial}|{default_pm}{terms}".encode()).hexdigest()[:10]
        record = self.gateway.create_subscription(
            customer_id=customer_id,
            price_ids=[base_price, overage_price],
            trial_days=trial,
            default_payment_method=default_pm,
            metadata={"tenant_id": tenant_id, "plan_type": plan.key},
            idempotency_key=f"subscription:{tenant_id}:{plan.key}:{seq}:{fingerprint}",
            days_until_due=days_until_due,
        )
        winner = self._record_new(tenant_id, seq, plan, record, base_price, overage_price)
        if winner is not None:
            return winner
        # A racing request recorded a different subscription for this tenant first: undo ours.
        self.gateway.cancel_subscription(record.id)
        raise Conflict(f"Tenant {tenant_id} got another subscription while this one was being "
                       "created; this one was canceled in Stripe.", field="tenant_id",
                       code="subscription_exists")

    def _check_tenant(self, tenant_id: str, customer_id: str) -> int:
        """Refuse unknown tenants, foreign customers and a second live subscription."""
        with self.db.session() as session:
            tenant = TenantRepository(session).get(tenant_id)
            if tenant is None:
                raise unknown_tenant(tenant_id)
            if tenant.stripe_customer_id != customer_id:
                raise InvalidInput(
                    f"customer_id {customer_id} is not the Stripe customer of tenant "
                    f"{tenant_id} (that is {tenant.stripe_customer_id})", field="customer_id")
            if tenant.stripe_subscription_id:
                current = SubscriptionRepository(session).get(tenant.stripe_subscription_id)
                if current is not None and is_live(current.status):
                    raise Conflict(
                        f"Tenant {tenant_id} already has subscription {current.id} "
                        f"({current.status}, plan {current.plan_type}); change its plan with "
                        f"POST /subscriptions/{current.id}/plan or cancel it first.",
                        field="tenant_id", code="subscription_exists")
            return tenant.subscription_seq

    def _price_ids(self, plan: Plan) -> tuple[str, str]:
        keys = (plan.base_lookup_key, plan.overage_lookup_key)
        prices = self.gateway.prices_by_lookup_key(keys)
        missing = [k for k in keys if k not in prices]
        if missing:
            raise ConfigurationError(
                f"Stripe has no price with lookup key {', '.join(missing)} for plan "
                f"{plan.key!r}: run `meterbill catalog sync` first.", code="catalog_not_synced")
        return prices[keys[0]].id, prices[keys[1]].id

    def _payment_method(self, customer_id: str, payment_method_id: str | None,
                        seq: int) -> str | None:
        """The payment method to put on the subscription (None: the customer's default).

        A given payment method is attached and made the customer's default. Without one, the
        `require_payment_method` policy needs the customer to have one already.
        """
        if payment_method_id:
            try:
                attached_id = self.gateway.attach_payment_method(
                    payment_method_id, customer_id,
                    idempotency_key=f"payment_method:{payment_method_id}:attach:{customer_id}")
            except StripeNotFound as error:
                raise _bad_payment_method(f"No such payment method: {payment_method_id}",
                                          error) from error
            except StripeInvalidRequest as error:
                raise _bad_payment_method(error.message, error) from error
            self.gateway.set_default_payment_method(
                customer_id, attached_id,
                idempotency_key=f"customer:{customer_id}:default_payment_method:"
                                f"{attached_id}:{seq}")
            return attached_id
        if not self.policy.require_payment_method:
            return None
        customer = self.gateway.retrieve_customer(customer_id)
        if customer.default_payment_method:
            return None
        attached = self.gateway.list_payment_method_ids(customer_id, limit=1)
        if attached:
            return attached[0]
        raise PaymentMethodRequired(customer_id)

    def _record_new(self, tenant_id: str, seq: int, plan: Plan, record: SubscriptionRecord,
                    base_price: str, overage_price: str) -> SubscriptionView | None:
        """Write the new subscription; None when a racing create won the tenant first."""
        with self.db.session() as session:
            tenants = TenantRepository(session)
            subscriptions = SubscriptionRepository(session)
            if not tenants.advance_subscription_seq(tenant_id, seq):
                tenant = tenants.get(tenant_id)
                existing = subscriptions.get(record.id)
                if tenant is not None and existing is not None and \
                        tenant.stripe_subscription_id == record.id:
                    return subscription_view(existing)  # the same request, replayed by Stripe
                return None
            row = subscriptions.get(record.id) or subscriptions.add(Subscription(
                id=record.id, tenant_id=tenant_id, customer_id=record.customer_id,
                plan_type=plan.key, status=record.status, revision=0,
                cancel_at_period_end=False))
            row.plan_type = plan.key
            row.base_price_id, row.overage_price_id = base_price, overage_price
            base_item = record.item_for_price(base_price)
            overage_item = record.item_for_price(overage_price)
            row.base_item_id = base_item.id if base_item else None
            row.overage_item_id = overage_item.id if overage_item else None
            tenant = tenants.get(tenant_id)
            assert tenant is not None
            tenants.lock(tenant)
            apply_subscription_record(row, tenant, record, self.clock())
            self._decide_access(session, tenant, record)
            subscriptions.flush()
            view = subscription_view(row)
            notices = list(new_notice_ids(session))
        self._notices_committed(notices)
        return view

    # --- cancel and resume -------------------------------------------------------------------

    def cancel(self, subscription_id: str, at_period_end: bool = True) -> SubscriptionView:
        current = self._fetch(subscription_id)
        if not is_live(current.status):
            raise Conflict(f"Subscription {subscription_id} is already {current.status}.",
                           code="subscription_not_live")
        if at_period_end:
            if current.cancel_at_period_end:
                return self._store(current)
            revision = self._revision(subscription_id)
            record = self.gateway.set_cancel_at_period_end(
                subscription_id, True,
                idempotency_key=f"subscription:{subscription_id}:cancel_at_period_end:"
                                f"r{revision}")
        else:
            record = self.gateway.cancel_subscription(subscription_id)
        # A pending downgrade is moot once the subscription is ending.
        return self._store(record, clear_pending=True, bump=True)

    def resume(self, subscription_id: str) -> SubscriptionView:
        """Undo a cancellation scheduled for the period's end."""
        current = self._fetch(subscription_id)
        if not is_live(current.status):
            raise Conflict(
                f"Subscription {subscription_id} is {current.status} and cannot be resumed; "
                "create a new subscription with POST /subscriptions.",
                code="subscription_not_live")
        if not current.cancel_at_period_end:
            return self._store(current)  # nothing scheduled: already running
        revision = self._revision(subscription_id)
        record = self.gateway.set_cancel_at_period_end(
            subscription_id, False,
            idempotency_key=f"subscription:{subscription_id}:resume:r{revision}")
        return self._store(record, bump=True)

    # --- plan changes ------------------------------------------------------------------------

    def change_plan(self, subscription_id: str, plan_type: str) -> PlanChangeView:
        """Upgrade now (prorated per UPGRADE_PRORATION); downgrade at period end by default."""
        target = self.catalog.get(plan_type)
        current = self._fetch(subscription_id)
        with self.db.session() as session:
            row = self._row(session, subscription_id)
            from_key, pending = row.plan_type, row.pending_plan
        if not is_live(current.status):
            raise Conflict(f"Subscription {subscription_id} is {current.status}; its plan "
                           "cannot change.", code="subscription_not_live")
        if current.status == "incomplete":
            # Stripe refuses item changes until the first invoice is paid.
            raise Conflict(f"Subscription {subscription_id} is incomplete: its first invoice "
                           f"({current.latest_invoice}) must be paid before the plan can "
                           "change.", code="subscription_incomplete")
        if current.cancel_at_period_end:
            raise Conflict(f"Subscription {subscription_id} is set to cancel at the period's "
                           "end; resume it before changing its plan.",
                           code="subscription_not_live")
        from_plan = self._plan_or_none(from_key)
        direction = plan_change_direction(from_plan, target) if from_plan else "upgrade"
        if direction == "same":
            if pending is None:
                raise Conflict(f"Subscription {subscription_id} is already on plan "
                               f"{target.key}.", field="plan_type", code="same_plan")
            view = self._store(current, clear_pending=True)  # keep the plan: drop the downgrade
            return PlanChangeView(view, "now", from_key, target.key, None)
        if direction == "downgrade" and self.policy.downgrade_at_period_end:
            effective_at = current.current_period_end
            if effective_at is None:
                raise StripeInvalidRequest(f"Subscription {subscription_id} has no current "
                                           "period end in Stripe; cannot schedule a downgrade.")
            with self.db.session() as session:
                row = self._row(session, subscription_id)
                row.pending_plan, row.pending_plan_at = target.key, effective_at
            view = self._store(current)
            return PlanChangeView(view, "period_end", from_key, target.key, None)
        proration = (self.policy.upgrade_proration if direction == "upgrade"
                     else "create_prorations")  # a downgrade now: credit on the next invoice
        return self._swap_prices(subscription_id, current, target, proration, "now")

    def apply_due_plan_changes(self) -> list[PlanChangeView]:
        """Apply recorded downgrades whose period has ended in Stripe (see module docstring)."""
        with self.db.session() as session:
            due = [(row.id, row.pending_plan, row.pending_plan_at)
                   for row in SubscriptionRepository(session).with_pending_plan()]
        applied: list[PlanChangeView] = []
        for subscription_id, plan_key, effective_at in due:
            current = self.gateway.retrieve_subscription(subscription_id)
            if not is_live(current.status) or current.cancel_at_period_end:
                self._store(current, clear_pending=True)
                continue
            start = current.current_period_start
            if plan_key is None or effective_at is None or start is None or start < effective_at:
                continue
            target = self._plan_or_none(plan_key)
            if target is None:  # the plan left the catalog meanwhile: drop the change
                self._store(current, clear_pending=True)
                continue
            applied.append(self._swap_prices(subscription_id, current, target,
                                             "create_prorations", "period_end"))
        return applied

    def _swap_prices(self, subscription_id: str, current: SubscriptionRecord, target: Plan,
                     proration: str, effective: Literal["now", "period_end"]) -> PlanChangeView:
        base_price, overage_price = self._price_ids(target)
        with self.db.session() as session:
            row = self._row(session, subscription_id)
            from_key, revision, tenant_id = row.plan_type, row.revision, row.tenant_id
            items = {row.base_item_id: base_price, row.overage_item_id: overage_price}
        if None in items or not all(current.item_for_id(i) for i in items if i):
            raise ConfigurationError(f"Subscription {subscription_id} does not have the base "
                                     "and overage items meterbill created; change it in Stripe.")
        record = self.gateway.change_subscription_prices(
            subscription_id, {k: v for k, v in items.items() if k},
            proration_behavior=proration,
            metadata={"tenant_id": tenant_id, "plan_type": target.key},
            idempotency_key=f"subscription:{subscription_id}:plan:{target.key}:r{revision}",
        )
        with self.db.session() as session:
            row = self._row(session, subscription_id)
            row.plan_type = target.key
            row.base_price_id, row.overage_price_id = base_price, overage_price
        invoice = record.latest_invoice
        proration_invoice = invoice if invoice and invoice != current.latest_invoice else None
        view = self._store(record, clear_pending=True, bump=True)
        return PlanChangeView(view, effective, from_key, target.key, proration_invoice)

    # --- helpers -----------------------------------------------------------------------------

    def _plan_or_none(self, key: str) -> Plan | None:
        return next((p for p in self.catalog if p.key == key), None)

    @staticmethod
    def _row(session: DbSession, subscription_id: str) -> Subscription:
        row = SubscriptionRepository(session).get(subscription_id)
        if row is None:
            raise NotFound(f"Unknown subscription: {subscription_id}", field="subscription_id",
                           code="unknown_subscription")
        return row

    def _revision(self, subscription_id: str) -> int:
        with self.db.session() as session:
            return self._row(session, subscription_id).revision

    def _fetch(self, subscription_id: str) -> SubscriptionRecord:
        """Our row must exist; then Stripe's current state of it."""
        self._revision(subscription_id)
        return self.gateway.retrieve_subscription(subscription_id)

    def _store(self, record: SubscriptionRecord, *, clear_pending: bool = False,
               bump: bool = False) -> SubscriptionView:
        """Copy Stripe's state onto our row and the tenant's, in one transaction."""
        with self.db.session() as session:
            row = self._row(session, record.id)
            tenant = TenantRepository(session).get(row.tenant_id)
            if tenant is None:  # pragma: no cover - the foreign key forbids it
                raise unknown_tenant(row.tenant_id)
            TenantRepository(session).lock(tenant)
            if clear_pending:
                row.pending_plan, row.pending_plan_at = None, None
            if bump:
                row.revision += 1
            apply_subscription_record(row, tenant, record, self.clock())
            self._decide_access(session, tenant, record)
            SubscriptionRepository(session).flush()
            view = subscription_view(row)
            notices = list(new_notice_ids(session))
        self._notices_committed(notices)
        return view

    def _decide_access(self, session: DbSession, tenant: Tenant,
                       record: SubscriptionRecord) -> None:
        """The tenant's access on the stored facts, as the webhook for this change would set
        it (a cancellation now is recorded now, once). The caller locked the row and moved
        its version on: a webhook handler that read the tenant before runs again."""
        self.access.apply(session, tenant, self.access.facts(session, tenant),
                          Cause("request", subscription=record))

    def _notices_committed(self, notice_ids: Sequence[int]) -> None:
        if notice_ids and self.on_notices is not None:
            self.on_notices(notice_ids)


def follows(tenant: Tenant, subscription_id: str) -> bool:
    """Whether `subscription_id` is (or becomes) the tenant's current subscription: the
    tenant follows one subscription, and an old, ended one must not take over again."""
    return tenant.stripe_subscription_id in (None, subscription_id) \
        or not is_live(tenant.billing_status)


def apply_subscription_record(row: Subscription, tenant: Tenant, record: SubscriptionRecord,
                              now: datetime) -> bool:
    """Copy Stripe's subscription onto our row, and make it the tenant's current one when it
    `follows`; True then. Access is not written here: the caller decides it afterwards
    (tenant_access.py) on the facts this stored."""
    row.status = record.status
    row.trial_end = record.trial_end
    row.current_period_start = record.current_period_start
    row.current_period_end = record.current_period_end
    row.cancel_at_period_end = record.cancel_at_period_end
    row.canceled_at = record.canceled_at
    row.latest_invoice = record.latest_invoice
    row.updated_at = now
    if follows(tenant, row.id):
        tenant.stripe_subscription_id = row.id
        tenant.current_plan = row.plan_type
        tenant.updated_at = now
        return True
    return False


def plan_of(catalog: Catalog, record: SubscriptionRecord, fallback: str | None) -> str | None:
    """The plan key: what meterbill wrote in the metadata, else the base price's lookup key."""
    key = record.metadata.get("plan_type")
    if key and key in catalog.keys():
        return key
    for item in record.items:
        plan = catalog.plan_for_lookup_key(item.price_lookup_key or "")
        if plan is not None:
            return plan.key
    return fallback


def store_subscription(session: DbSession, catalog: Catalog, tenant: Tenant,
                       record: SubscriptionRecord, now: datetime) -> str:
    """Copy a subscription Stripe told us about (a webhook) onto our rows; a note of it."""
    repo = SubscriptionRepository(session)
    row = repo.get(record.id)
    plan = plan_of(catalog, record, row.plan_type if row else None)
    if row is None:
        if plan is None:
            return f"subscription {record.id} has no meterbill plan; left alone"
        row = repo.add(Subscription(
            id=record.id, tenant_id=tenant.tenant_id, customer_id=record.customer_id,
            plan_type=plan, status=record.status, revision=0, cancel_at_period_end=False,
            created_at=now, updated_at=now))
    elif plan is not None:
        row.plan_type = plan
    if apply_subscription_record(row, tenant, record, now):
        return (f"subscription {record.id} {record.status}, plan {row.plan_type}, "
                f"cancel_at_period_end={record.cancel_at_period_end}")
    return (f"subscription {record.id} {record.status} recorded; tenant {tenant.tenant_id} "
            f"follows {tenant.stripe_subscription_id}")


def _bad_payment_method(message: str, error: MeterbillError) -> InvalidInput:
    return InvalidInput(message, field="payment_method_id", code="invalid_payment_method",
                        details={"stripe_request_id": error.details.get("stripe_request_id")})


DEFAULT_DAYS_UNTIL_DUE = 30  # net 30 when invoices are emailed and no term is given
MAX_DAYS_UNTIL_DUE = 365


def check_days_until_due(days: int | None) -> None:
    if days is None:
        return
    if isinstance(days, bool) or not isinstance(days, int) or not (
            0 <= days <= MAX_DAYS_UNTIL_DUE):
        raise InvalidInput(f"days_until_due must be a whole number from 0 to "
                           f"{MAX_DAYS_UNTIL_DUE}", field="days_until_due")
