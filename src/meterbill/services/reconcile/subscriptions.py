"""Subscription reconciliation: the daily proof that meterbill and Stripe agree.

One pass over Stripe's subscriptions of every status (100 a page, customers expanded, so N
subscriptions cost ceil(N/100) calls), compared with our rows page by page
(`domain.reconciliation.compare`), then our tenants whose subscription Stripe does not have.
Stripe is the source of truth: our side is corrected the way a webhook would have (the
subscription copied by `store_subscription`, access decided again by the one writer), every
drift is recorded with both values, its fix and the run, and alerted once.
`dry_run` only reports.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from ...adapters.db.models import Subscription, Tenant
from ...adapters.db.notifications import new_notice_ids
from ...adapters.db.reconciliation import DriftRepository, DriftRow, ReconcileReads
from ...adapters.db.repositories import SubscriptionRepository, TenantRepository
from ...adapters.db.session import Database, DbSession
from ...domain.clock import Clock, utcnow
from ...domain.plans import Catalog
from ...domain.reconciliation import (
    Drift,
    LocalSubscription,
    RemoteSubscription,
    compare,
    missing,
    unknown,
)
from ...ports.metrics import metrics
from ...ports.notify import Notifier
from ...ports.stripe import ListedSubscription, SubscriptionListPort
from ..access.writer import Cause, TenantAccessService
from ..billing.subscriptions import plan_of, store_subscription
from ..notifications.outbox import admin_alert
from ..views import _View

log = logging.getLogger("meterbill.reconcile")

# Drifts that copying Stripe's subscription onto our row corrects.
_COPIED = frozenset({"status", "plan", "cancel_at_period_end", "period", "trial_end"})


@dataclass(frozen=True)
class DriftView(_View):
    kind: str
    tenant_id: str | None
    subscription_id: str | None
    local: str  # meterbill's value when found
    stripe: str  # Stripe's value
    fix: str  # what was done (a dry run: what would be)
    fixed: bool
    found_at: datetime
    run_id: str


@dataclass(frozen=True)
class ReconcileReport(_View):
    run_id: str
    dry_run: bool
    stripe_calls: int  # list calls made (one per page of 100)
    subscriptions: int  # Stripe subscriptions listed
    drifts: list[DriftView] = field(default_factory=list)

    def as_counts(self) -> dict[str, int]:
        counts = {"stripe_calls": self.stripe_calls, "subscriptions": self.subscriptions,
                  "drifts": len(self.drifts),
                  "fixed": sum(1 for d in self.drifts if d.fixed)}
        for drift in self.drifts:
            counts[f"kind.{drift.kind}"] = counts.get(f"kind.{drift.kind}", 0) + 1
        return counts


def _view(row: DriftRow) -> DriftView:
    return DriftView(row.kind, row.tenant_id, row.subscription_id, row.local_value,
                     row.stripe_value, row.fix, row.fixed, row.found_at, row.run_id)


class SubscriptionReconciler:
    def __init__(self, db: Database, stripe: SubscriptionListPort, catalog: Catalog,
                 access: TenantAccessService, notifier: Notifier, *, clock: Clock = utcnow,
                 on_notices: Callable[[Sequence[int]], object] | None = None,
                 pace: Callable[[], None] | None = None) -> None:
        self.db = db
        self.stripe = stripe
        self.pace = pace  # waits for the next list call's turn (None: no pacing)
        self.catalog = catalog
        self.access = access  # the one writer of access
        self.notifier = notifier
        self.clock = clock
        self.on_notices = on_notices  # sends the alerts after their commit

    # --- reads for the operator and the admin console ---------------------------------------

    def drifts(self, limit: int = 100, offset: int = 0) -> list[DriftView]:
        """Recorded drifts, newest first, with both values and the fix."""
        with self.db.session() as session:
            return [_view(r) for r in DriftRepository(session).newest(limit, offset)]

    def open_drifts(self) -> int:
        """Drifts recorded that no run could fix (the `drifts_open` SLO)."""
        with self.db.session() as session:
            return DriftRepository(session).open_count()

    # --- the run -------------------------------------------------------------------------------

    def run(self, *, dry_run: bool = False,
            progress: Callable[[int], object] | None = None) -> ReconcileReport:
        run_id = uuid.uuid4().hex
        found: list[DriftView] = []
        seen: set[str] = set()
        calls = 0
        pages = self.stripe.subscription_pages(100)

        def fetch() -> list[ListedSubscription] | None:
            if self.pace is not None:
                self.pace()  # Stripe's read limit (25/s in test mode) is shared
            return next(pages, None)

        # The next page is fetched while this one is compared: a run takes as long as its
        # list calls, not their sum with our database work.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile") as ahead:
            coming = ahead.submit(fetch)
            while (page := coming.result()) is not None:
                coming = ahead.submit(fetch)
                calls += 1
                seen.update(listed.record.id for listed in page)
                found.extend(self._page(page, run_id, dry_run))
                if progress is not None:
                    progress(len(seen))
        with self.db.session() as session:
            gone = [i for i in ReconcileReads(session).current_subscription_ids()
                    if i not in seen]
        for subscription_id in gone:
            found.extend(self._gone(subscription_id, run_id, dry_run))
        log.info("reconciliation %s%s: %d subscription(s) in %d call(s), %d drift(s)", run_id,
                 " (dry run)" if dry_run else "", len(seen), calls, len(found))
        return ReconcileReport(run_id, dry_run, calls, len(seen), found)

    def _page(self, page: list[ListedSubscription], run_id: str,
              dry_run: bool) -> list[DriftView]:
        with self.db.session() as session:
            reads = ReconcileReads(session)
            ours = reads.subscriptions([p.record.id for p in page])
            owners = reads.tenants_by_customer(
                [p.record.customer_id for p in page if p.record.id not in ours])
            locals_ = {i: _local(sub, tenant) for i, (sub, tenant) in ours.items()}
        found: list[DriftView] = []
        for listed in page:
            remote = self._remote(listed)
            local = locals_.get(remote.id)
            if local is not None:
                drifts = compare(local, remote)
            else:
                one = unknown(remote, owners.get(remote.customer_id))
                drifts = [one] if one is not None else []
            if drifts:
                found.extend(self._settle(listed, drifts, run_id, dry_run))
        return found

    def _remote(self, listed: ListedSubscription) -> RemoteSubscription:
        r = listed.record
        return RemoteSubscription(
            id=r.id, customer_id=r.customer_id, customer_deleted=listed.customer_deleted,
            status=r.status, plan=plan_of(self.catalog, r, None),
            cancel_at_period_end=r.cancel_at_period_end,
            period=(r.current_period_start, r.current_period_end), trial_end=r.trial_end,
            payment_method_on_file=bool(r.default_payment_method
                                        or listed.customer_default_payment_method))

    def _settle(self, listed: ListedSubscription, drifts: list[Drift], run_id: str,
                dry_run: bool) -> list[DriftView]:
        """Correct our side for one subscription's drifts, in one transaction with the
        tenant's row locked; record and alert each."""
        record = listed.record
        if dry_run:
            return [self._dry(d, run_id) for d in drifts]
        now = self.clock()
        with self.db.session() as session:
            tenant = self._tenant(session, drifts[0].tenant_id)
            fixes = {}
            if tenant is not None:
                kinds = {d.kind for d in drifts}
                if kinds & _COPIED or "unknown_subscription" in kinds:
                    note = store_subscription(session, self.catalog, tenant, record, now)
                    for kind in kinds & (_COPIED | {"unknown_subscription"}):
                        fixes[kind] = _short(f"our copy set to Stripe's: {note}")
                row = SubscriptionRepository(session).get(record.id)
                if row is None:  # a subscription on no meterbill plan is left alone
                    fixes.pop("unknown_subscription", None)
                if "payment_method" in kinds and row is not None:
                    row.payment_method_on_file = bool(
                        record.default_payment_method
                        or listed.customer_default_payment_method)
                    fixes["payment_method"] = "payment method on file set to Stripe's"
                if "customer_deleted" in kinds:
                    tenant.stripe_customer_id = None
                    tenant.updated_at = now
                    fixes["customer_deleted"] = ("tenant's link to the deleted customer "
                                                 "cleared; a new customer can be made")
                if tenant.stripe_subscription_id == record.id or "customer_deleted" in kinds:
                    self.access.apply(session, tenant, self.access.facts(session, tenant),
                                      Cause("job", subscription=record))
            views = [self._record(session, d, run_id, now, fixes.get(d.kind)) for d in drifts]
            notices = list(new_notice_ids(session))
        self._sent(notices)
        return views

    def _gone(self, subscription_id: str, run_id: str, dry_run: bool) -> list[DriftView]:
        now = self.clock()
        with self.db.session() as session:
            row = SubscriptionRepository(session).get(subscription_id)
            if row is None:
                return []
            tenant = self._tenant(session, row.tenant_id)
            drift = missing(_local(row, tenant)) if tenant is not None else None
            if drift is None or tenant is None:
                return []
            if dry_run:
                return [self._dry(drift, run_id)]
            row.status = "canceled"
            row.ended_at = row.ended_at or now
            row.updated_at = now
            self.access.apply(session, tenant, self.access.facts(session, tenant),
                              Cause("job"))
            view = self._record(session, drift, run_id, now,
                                "marked canceled here (Stripe has no such subscription); "
                                "access decided again")
            notices = list(new_notice_ids(session))
        self._sent(notices)
        return [view]

    @staticmethod
    def _tenant(session: DbSession, tenant_id: str | None) -> Tenant | None:
        if tenant_id is None:
            return None
        tenants = TenantRepository(session)
        tenant = tenants.get(tenant_id)
        if tenant is not None:
            tenants.lock(tenant)  # a webhook handler that read it before runs again
        return tenant

    def _dry(self, drift: Drift, run_id: str) -> DriftView:
        return DriftView(drift.kind, drift.tenant_id, drift.subscription_id, drift.local,
                         drift.stripe, "dry run: nothing changed", False, self.clock(), run_id)

    def _record(self, session: DbSession, drift: Drift, run_id: str, now: datetime,
                fix: str | None) -> DriftView:
        row = DriftRow(fingerprint=drift.fingerprint, kind=drift.kind,
                       tenant_id=drift.tenant_id, subscription_id=drift.subscription_id,
                       local_value=_short(drift.local), stripe_value=_short(drift.stripe),
                       found_at=now, run_id=run_id,
                       fix=fix or "reported: needs the operator (no meterbill tenant)",
                       fixed=fix is not None)
        if DriftRepository(session).add(row):
            metrics.count("drifts_found", kind=drift.kind)
            subject = f"Drift: {drift.kind} of {drift.subscription_id or drift.tenant_id}"
            detail = (f"meterbill had {drift.local}, Stripe has {drift.stripe} "
                      f"(tenant {drift.tenant_id or 'unknown'}). {row.fix}.")
            self.notifier.enqueue(session, admin_alert(f"drift:{drift.fingerprint}", subject,
                                                       detail, tenant_id=drift.tenant_id))
            log.warning("%s: %s", subject, detail)
        return _view(row)

    def _sent(self, notice_ids: Sequence[int]) -> None:
        if notice_ids and self.on_notices is not None:
            self.on_notices(notice_ids)


def _local(row: Subscription, tenant: Tenant) -> LocalSubscription:
    return LocalSubscription(
        id=row.id, tenant_id=tenant.tenant_id, status=row.status, plan=row.plan_type,
        cancel_at_period_end=bool(row.cancel_at_period_end),
        period=(row.current_period_start, row.current_period_end), trial_end=row.trial_end,
        payment_method_on_file=row.payment_method_on_file,
        tenant_customer_id=tenant.stripe_customer_id)


def _short(text: str) -> str:
    return text if len(text) <= 255 else text[:254] + "…"
