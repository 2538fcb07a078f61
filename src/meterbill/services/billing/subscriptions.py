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

Downgrades at period end are Stripe subscription schedules: the current phase keeps the
subscription's items until the period end, the next phase has the new plan's base and overage
prices, and the schedule releases the subscription after it (`end_behavior=release`). So the
renewal invoice bills the new plan's base fee, and the ending period's usage at the old plan's
overage price; nothing is credited later. Our row records the pending plan (`pending_plan`,
`pending_plan_at`) for the API and the summary; the `customer.subscription.updated` webhook
of the phase change brings the new plan to the row and clears it (`store_subscription`).
Choosing the current plan again (or `cancel_pending_change`) releases the schedule; an upgrade
or a cancellation at period end releases it first.

Metered usage across a change made now (docs/billing.md, "Plan changes and metered usage"):
Stripe (flexible billing mode, the default at our API version) bills the usage reported under
the old overage price up to the change on an invoice item that follows `proration_behavior`
(with `always_invoice`: on the invoice made at the change), priced with the old plan's tiers,
and the new price meets only the usage after the change, with its own tiers in full. So
meterbill first flushes the tenant's usage up to the change (`UsageFlushPort.flush`), then
swaps the prices, and records the change (`previous_plan`, `plan_changed_at`) for the usage view.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

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
    StripeCardError,
    StripeInvalidRequest,
    StripeNotFound,
)
from ...domain.plans import Catalog, Plan, plan_change_direction
from ...ports.notify import Notice
from ...ports.stripe import PaymentRecord, StripePort, SubscriptionRecord
from ..access.writer import Cause, TenantAccessService
from ..views import PlanChangeView, SubscriptionView
from .customers import validate_tenant_id
from .tenants import unknown_tenant


class UsageFlush(Protocol):
    """Usage sync's `flush` (services/usage/sync.py; the webhooks' `UsageFlushPort`)."""

    def flush(self, customer_id: str, period_end: datetime) -> None: ...


# Stripe's longest trial.
MAX_TRIAL_DAYS = 730
# Stripe expires a subscription whose first payment is not made within 23 hours.
INCOMPLETE_HOURS = 23


@dataclass(frozen=True)
class SubscriptionPolicy:
    require_payment_method: bool = True
    downgrade_at_period_end: bool = True
    upgrade_proration: Literal["always_invoice", "create_prorations"] = "always_invoice"
    default_trial_days: int = 14


def subscription_view(row: Subscription,
                      next_action: dict[str, str] | None = None) -> SubscriptionView:
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
        payment_method_on_file=row.payment_method_on_file,
        trialing_without_payment_method=(row.status == "trialing"
                                         and row.payment_method_on_file is not True),
        next_action=next_action,
    )


class SubscriptionService:
    def __init__(self, db: Database, gateway: StripePort, catalog: Catalog,
                 policy: SubscriptionPolicy | None = None, *, access: TenantAccessService,
                 on_notices: Callable[[Sequence[int]], object] | None = None,
                 clock: Clock = utcnow, usage: UsageFlush | None = None) -> None:
        self.db = db
        self.gateway = gateway
        self.catalog = catalog
        self.policy = policy or SubscriptionPolicy()
        self.access = access  # writes the tenant's access from what Stripe answered
        # Called with the ids of the notices a change recorded (a cancellation), after commit.
        self.on_notices = on_notices
        self.clock = clock  # stamps our rows' updated_at (and, with `usage`, the change)
        # Reports the usage up to a plan change made now before the prices swap (see above).
        self.usage = usage

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
        default_pm, on_file = self._payment_method(customer_id, payment_method_id, seq) \
            if days_until_due is None or payment_method_id else (None, False)

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
        payment = self._first_payment(record)
        winner = self._record_new(tenant_id, seq, plan, record, base_price, overage_price,
                                  on_file, payment)
        if winner is not None:
            return winner
        # A racing request recorded a different subscription for this tenant first: undo ours.
        self.gateway.cancel_subscription(record.id,
                                         idempotency_key=f"subscription:{record.id}:cancel:race")
        raise Conflict(f"Tenant {tenant_id} got another subscription while this one was being "
                       "created; this one was canceled in Stripe.", field="tenant_id",
                       code="subscription_exists")

    def _first_payment(self, record: SubscriptionRecord) -> PaymentRecord | None:
        """The first invoice was charged at creation (`allow_incomplete`). Declined: cancel
        the subscription in Stripe and raise the decline (402), so that nothing is left
        half-written. Waiting for the cardholder to authenticate (3-D Secure): the payment,
        whose hosted invoice page the customer pays on. Otherwise (paid, a trial): None."""
        if record.status != "incomplete" or not record.latest_invoice:
            return None
        payment = self.gateway.invoice_payment(record.latest_invoice)
        if payment.invoice_status == "open" and payment.intent_status in (
                "requires_action", "processing"):
            return payment
        # Declined (or not charged at all): this subscription never starts. The key makes a
        # retried create, which Stripe answers with the same subscription, cancel it once.
        try:
            self.gateway.cancel_subscription(
                record.id, idempotency_key=f"subscription:{record.id}:cancel:declined")
        except (StripeNotFound, StripeInvalidRequest):
            # Already canceled by the first try of this same request (Stripe answers a
            # retried create with the same subscription): fine if it is no longer live.
            if is_live(self.gateway.retrieve_subscription(record.id).status):
                raise
        code = payment.decline_code or payment.error_code or "card_declined"
        raise StripeCardError(
            f"The card was declined ({code}): {payment.message or 'no payment was made'}. "
            f"No subscription was created; retry with another payment method.",
            stripe_code=code, field="payment_method_id", code="card_declined")

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
                        seq: int) -> tuple[str | None, bool]:
        """The payment method to put on the subscription (None: the customer's default), and
        whether Stripe has one to charge at all.

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
            return attached_id, True
        customer = self.gateway.retrieve_customer(customer_id)
        if customer.default_payment_method:
            return None, True
        attached = self.gateway.list_payment_method_ids(customer_id, limit=1)
        if attached:
            return attached[0], True
        if not self.policy.require_payment_method:
            return None, False
        raise PaymentMethodRequired(customer_id)

    def _record_new(self, tenant_id: str, seq: int, plan: Plan, record: SubscriptionRecord,
                    base_price: str, overage_price: str, on_file: bool,
                    payment: PaymentRecord | None) -> SubscriptionView | None:
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
            row.payment_method_on_file = on_file
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
            next_action = None
            if payment is not None and payment.hosted_invoice_url:
                next_action = {"type": "authenticate_payment",
                               "hosted_invoice_url": payment.hosted_invoice_url}
                self._remind_to_authenticate(session, tenant, row, payment)
            view = subscription_view(row, next_action)
            notices = list(new_notice_ids(session))
        self._notices_committed(notices)
        return view

    def _remind_to_authenticate(self, session: DbSession, tenant: Tenant, row: Subscription,
                                payment: PaymentRecord) -> None:
        """Email the customer the hosted invoice page: their bank wants them to confirm the
        first payment, and Stripe ends the subscription if they do not within 23 hours."""
        self.access.notifier.enqueue(session, Notice(
            kind="payment_authentication_required",
            dedupe_key=f"authenticate:{tenant.tenant_id}:{payment.invoice_id}",
            tenant_id=tenant.tenant_id,
            detail=f"subscription {row.id}: first payment ({payment.invoice_id}) awaits the "
                   "cardholder's authentication",
            facts={"tenant_name": tenant.name or tenant.tenant_id, "email": tenant.email,
                   "plan": row.plan_type, "invoice_id": payment.invoice_id,
                   "invoice_url": payment.hosted_invoice_url, "customer_id": row.customer_id,
                   "expires_in_hours": INCOMPLETE_HOURS}))

    def needing_attention(self, status: str) -> list[SubscriptionView]:
        """`incomplete`, `past_due` or `trialing_without_payment_method` subscriptions."""
        if status not in ("incomplete", "past_due", "trialing_without_payment_method"):
            raise InvalidInput("status must be incomplete, past_due or "
                               "trialing_without_payment_method", field="status")
        with self.db.session() as session:
            return [subscription_view(row) for row in
                    SubscriptionRepository(session).needing_attention(status)]

    # --- cancel and resume -------------------------------------------------------------------

    def cancel(self, subscription_id: str, at_period_end: bool = True) -> SubscriptionView:
        current = self._fetch(subscription_id)
        if not is_live(current.status):
            raise Conflict(f"Subscription {subscription_id} is already {current.status}.",
                           code="subscription_not_live")
        if current.schedule_id is not None:  # the pending downgrade is moot
            current = self._release(subscription_id, current.schedule_id)
        if at_period_end:
            if current.cancel_at_period_end:
                return self._store(current)
            revision = self._revision(subscription_id)
            record = self.gateway.set_cancel_at_period_end(
                subscription_id, True,
                idempotency_key=f"subscription:{subscription_id}:cancel_at_period_end:"
                                f"r{revision}")
        else:
            record = self.gateway.cancel_subscription(
                subscription_id, idempotency_key=f"subscription:{subscription_id}:cancel_now:"
                                                 f"r{self._revision(subscription_id)}")
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
            if pending is None and current.schedule_id is None:
                raise Conflict(f"Subscription {subscription_id} is already on plan "
                               f"{target.key}.", field="plan_type", code="same_plan")
            return self.cancel_pending_change(subscription_id)
        if current.schedule_id is not None:  # a pending downgrade gives way to this change
            current = self._release(subscription_id, current.schedule_id)
        if direction == "downgrade" and self.policy.downgrade_at_period_end:
            return self._schedule_downgrade(subscription_id, current, from_key, target)
        proration = (self.policy.upgrade_proration if direction == "upgrade"
                     else "create_prorations")  # a downgrade now: credit on the next invoice
        changed_at = self.clock()
        if self.usage is not None:
            # Stripe bills the old price's usage as it stands at the swap: report it all first.
            self.usage.flush(current.customer_id, changed_at)
        changed = self._swap_prices(subscription_id, current, target, proration, "now")
        with self.db.session() as session:
            row = self._row(session, subscription_id)
            row.previous_plan, row.plan_changed_at = from_key, changed_at
        return changed

    def cancel_pending_change(self, subscription_id: str) -> PlanChangeView:
        """Keep the current plan: release the schedule that would downgrade it."""
        current = self._fetch(subscription_id)
        with self.db.session() as session:
            row = self._row(session, subscription_id)
            plan_key, pending = row.plan_type, row.pending_plan
        if pending is None and current.schedule_id is None:
            raise Conflict(f"Subscription {subscription_id} has no pending plan change.",
                           code="no_pending_change")
        if current.schedule_id is not None:
            current = self._release(subscription_id, current.schedule_id)
        view = self._store(current, clear_pending=True)
        return PlanChangeView(view, "now", plan_key, plan_key, None)

    def _schedule_downgrade(self, subscription_id: str, current: SubscriptionRecord,
                            from_key: str, target: Plan) -> PlanChangeView:
        effective_at = current.current_period_end
        if effective_at is None:
            raise StripeInvalidRequest(f"Subscription {subscription_id} has no current "
                                       "period end in Stripe; cannot schedule a downgrade.")
        prices = self._price_ids(target)
        revision = self._revision(subscription_id)
        self.gateway.schedule_next_phase(
            subscription_id, prices,
            idempotency_key=f"subscription:{subscription_id}:downgrade:{target.key}:r{revision}")
        record = self.gateway.retrieve_subscription(subscription_id)
        with self.db.session() as session:
            row = self._row(session, subscription_id)
            row.pending_plan, row.pending_plan_at = target.key, effective_at
        view = self._store(record, bump=True)
        return PlanChangeView(view, "period_end", from_key, target.key, None)

    def _release(self, subscription_id: str, schedule_id: str) -> SubscriptionRecord:
        """Release the subscription from its schedule (the pending downgrade goes)."""
        self.gateway.release_schedule(
            schedule_id, idempotency_key=f"subscription_schedule:{schedule_id}:release")
        record = self.gateway.retrieve_subscription(subscription_id)
        self._store(record, clear_pending=True, bump=True)
        return record

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
    row.ended_at = record.ended_at
    row.latest_invoice = record.latest_invoice
    row.updated_at = now
    if follows(tenant, row.id):
        tenant.stripe_subscription_id = row.id
        tenant.current_plan = row.plan_type
        tenant.updated_at = now
        return True
    return False


def plan_of(catalog: Catalog, record: SubscriptionRecord, fallback: str | None) -> str | None:
    """The plan key: the one a price's lookup key names, else what meterbill wrote in the
    metadata (a price whose lookup key moved on to a newer price)."""
    for item in record.items:  # first: a schedule's phase changes prices, not metadata
        plan = catalog.plan_for_lookup_key(item.price_lookup_key or "")
        if plan is not None:
            return plan.key
    key = record.metadata.get("plan_type")
    if key and key in catalog.keys():
        return key
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
        if plan != row.plan_type:  # a schedule's phase started: follow its items
            _follow_items(row, catalog.get(plan), record)
            if row.pending_plan == plan and row.pending_plan_at is not None:
                # meterbill's downgrade took effect: the ended period stays the old plan's
                # (invoice verification prices its usage by it).
                row.previous_plan, row.plan_changed_at = row.plan_type, row.pending_plan_at
        row.plan_type = plan
    if row.pending_plan is not None and (record.schedule_id is None
                                         or row.pending_plan == row.plan_type):
        row.pending_plan, row.pending_plan_at = None, None  # applied, or released
    if apply_subscription_record(row, tenant, record, now):
        return (f"subscription {record.id} {record.status}, plan {row.plan_type}, "
                f"cancel_at_period_end={record.cancel_at_period_end}")
    return (f"subscription {record.id} {record.status} recorded; tenant {tenant.tenant_id} "
            f"follows {tenant.stripe_subscription_id}")


def _follow_items(row: Subscription, plan: Plan, record: SubscriptionRecord) -> None:
    for item in record.items:
        if item.price_lookup_key == plan.base_lookup_key:
            row.base_item_id, row.base_price_id = item.id, item.price_id
        elif item.price_lookup_key == plan.overage_lookup_key:
            row.overage_item_id, row.overage_price_id = item.id, item.price_id


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
