"""Usage repair: what the usage reconciliation can fix, it fixes, day by day.

For a tenant whose Stripe meter differs from what the ledger says was sent (events lost in
Stripe, or counted twice), each day of the window is compared (ledger against Stripe's
summary). Stripe is brought to the ledger, in this order, each action recorded in
`usage_repairs`:

1. Stripe has more: the events the ledger no longer knows (gaps in the day's identifiers
   `{tenant}:{metric}:{day}:{n}`: sent, then forgotten, then sent again) are cancelled while
   Stripe allows it (24 hours after it received them).
2. What still differs is sent as one meter event of the signed difference (a resend, or a
   correction) while Stripe accepts the day's timestamp (35 days).
3. Older than that, a signed invoice item on the customer's next invoice, at the plan's
   overage price per unit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from ...adapters.db.repositories import TenantRepository
from ...adapters.db.session import Database
from ...adapters.db.usage_ledger import UsageLedgerRepository
from ...adapters.db.usage_repairs import UsageRepairRepository, UsageRepairRow
from ...domain import usage_slots as slots
from ...domain.clock import Clock, utcnow
from ...domain.money import round_cents
from ...domain.plans import Catalog
from ...domain.usage import PAST_WINDOW
from ...ports.meters import MeterEventsPort
from ...ports.usage_repair import UsageRepairPort

log = logging.getLogger("meterbill.usage")


@dataclass(frozen=True)
class Repair:
    tenant_id: str
    day: date
    action: str  # cancelled, resent, corrected, adjusted
    quantity: int  # what Stripe's meter gained (negative: lost); an adjustment's units
    amount: int | None  # cents of an adjustment
    reference: str


class UsageRepair:
    def __init__(self, db: Database, meters: MeterEventsPort, stripe: UsageRepairPort,
                 catalog: Catalog, *, clock: Clock = utcnow) -> None:
        self.db = db
        self.meters = meters
        self.stripe = stripe
        self.catalog = catalog
        self.clock = clock  # Stripe's (a test clock's in tests)

    def repair(self, tenant_id: str, customer_id: str, metric: str, start: datetime,
               end: datetime, meter_id: str) -> list[Repair]:
        """Bring Stripe's meter to the ledger for each day of [start, end)."""
        done: list[Repair] = []
        day = start.date()
        while datetime.combine(day, time.min, tzinfo=UTC) < end:
            lo = max(start, datetime.combine(day, time.min, tzinfo=UTC))
            hi = min(end, datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC))
            window = slots.summary_window(lo, hi)
            if window[1] - window[0] >= timedelta(minutes=1):
                done.extend(self._day(tenant_id, customer_id, metric, day, window, meter_id))
            day += timedelta(days=1)
        return done

    def _day(self, tenant_id: str, customer_id: str, metric: str, day: date,
             window: tuple[datetime, datetime], meter_id: str) -> list[Repair]:
        done: list[Repair] = []
        with self.db.session() as session:
            ledger = UsageLedgerRepository(session).reported(tenant_id, metric, *window)
            repairs = UsageRepairRepository(session)
            seqs = repairs.ledger_seqs(tenant_id, metric, day)
            # Units already left on an invoice are settled: the meter never gets them.
            ledger -= repairs.adjusted(tenant_id, metric, day, day)
        stripe = self._stripe(meter_id, customer_id, window)
        if stripe > ledger and seqs:
            forgotten = [slots.identifier(tenant_id, metric, day, n)
                         for n in range(1, max(seqs)) if n not in seqs]
            cancelled = [i for i in forgotten if self.stripe.cancel_meter_event(
                event_name=self.catalog.meter.event_name, identifier=i,
                idempotency_key=f"usage-cancel:{i}")]
            if cancelled:
                after = self._stripe(meter_id, customer_id, window)
                done.append(self._record(tenant_id, metric, day, "cancelled", after - stripe,
                                         None, ",".join(cancelled)))
                stripe = after
        delta = ledger - stripe
        if delta == 0:
            return done
        now = self.clock()
        stamp = min(window[1], slots.floor_minute(now)) - timedelta(seconds=30)
        if stamp >= window[0] and stamp > now - PAST_WINDOW + slots.PAST_MARGIN:
            with self.db.session() as session:
                n = UsageRepairRepository(session).count(tenant_id, metric, day) + 1
            identifier = slots.identifier(tenant_id, metric, day, 0).rsplit(":", 1)[0] + \
                f":r{n}"
            self.meters.send_meter_event(
                event_name=self.catalog.meter.event_name, customer_id=customer_id,
                value=delta, value_key=self.catalog.meter.value_key, timestamp=stamp,
                identifier=identifier, idempotency_key=slots.idempotency_key(identifier))
            done.append(self._record(tenant_id, metric, day,
                                     "resent" if delta > 0 else "corrected", delta, None,
                                     identifier))
            return done
        with self.db.session() as session:
            tenant = TenantRepository(session).get(tenant_id)
            plan_key = tenant.current_plan if tenant is not None else None
            n = UsageRepairRepository(session).count(tenant_id, metric, day) + 1
        if plan_key is None or plan_key not in self.catalog.keys():
            log.error("ADMIN ALERT: usage of tenant %s on %s differs by %+d and is too old "
                      "for Stripe's meter; no plan to price an adjustment", tenant_id, day,
                      delta)
            return done
        plan = self.catalog.get(plan_key)
        amount = round_cents(delta * plan.overage_unit_amount)
        item = self.stripe.add_invoice_adjustment(
            customer_id=customer_id, amount=amount, currency=plan.currency,
            description=f"Usage adjustment for {day.isoformat()}: {delta:+d} {metric}",
            idempotency_key=f"usage-adjust:{tenant_id}:{metric}:{day.isoformat()}:{n}")
        done.append(self._record(tenant_id, metric, day, "adjusted", delta, amount, item))
        return done

    def adjusted(self, tenant_id: str, metric: str, start: datetime, end: datetime) -> int:
        """Units of [start, end) settled on invoices instead of the meter."""
        with self.db.session() as session:
            return UsageRepairRepository(session).adjusted(
                tenant_id, metric, start.date(), (end - timedelta(microseconds=1)).date())

    def _stripe(self, meter_id: str, customer_id: str,
                window: tuple[datetime, datetime]) -> int:
        return self.meters.meter_usage(meter_id=meter_id, customer_id=customer_id,
                                       start=window[0], end=window[1])

    def _record(self, tenant_id: str, metric: str, day: date, action: str, quantity: int,
                amount: int | None, reference: str) -> Repair:
        with self.db.session() as session:
            UsageRepairRepository(session).add(UsageRepairRow(
                tenant_id=tenant_id, metric=metric, day=day, action=action, quantity=quantity,
                amount=amount, reference=reference[:255], at=self.clock()))
        log.warning("usage repair: tenant %s, %s: %s %+d%s (%s)", tenant_id, day, action,
                    quantity, f", {amount} cents" if amount is not None else "", reference)
        return Repair(tenant_id, day, action, quantity, amount, reference)
