"""The `overdue-invoices` job: the later overdue steps of invoices sent by email.

Stripe sends `invoice.overdue` once, when an emailed invoice's due date passes (the policy's
day-1 step). The later steps (by default day 15, 30 and 45) come from this daily job: it lists
the open `send_invoice` invoices past their due date (`GET /v1/invoices` with `status=open`,
`collection_method=send_invoice`, `due_date[lt]`), and for each tenant owing one, re-reads the
invoice and its subscription from Stripe and settles the dunning step through the dunning
service and the one access writer: the decision `invoice.overdue` gets, days past due counted
on Stripe's clock (the customer's test clock when there is one).

Each tenant's turn is taken as a webhook handler takes it (webhooks/context.py): its
`state_version` is noted before Stripe is read and claimed before the first write; a handler
or manual step that committed meanwhile makes this turn run again on a fresh read, the last run
locking the tenant first. A tenant already at the step its invoice reaches is left alone
without a write, so a second run the same day changes nothing, and a step (with its email) is
entered once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ...adapters.db.notifications import new_notice_ids
from ...adapters.db.session import Database
from ...domain.clock import Clock, utcnow
from ...domain.dunning import DunningPolicy, overdue_step_ahead
from ...domain.plans import Catalog
from ...ports.notify import Notifier
from ...ports.webhooks import InvoiceRecord, StripeEventsPort
from ..errors import StaleTenant, UnknownCustomer
from ..views import _View
from ..webhooks.context import HandlerContext, NoUsageFlush
from ..webhooks.handlers.payments import current_invoice
from ..webhooks.processor import CONFLICT_RUNS
from .dunning import DunningService
from .writer import dunning_state

log = logging.getLogger("meterbill.dunning")


@dataclass(frozen=True)
class OverdueReport(_View):
    invoices: int  # open emailed invoices Stripe listed as past their due date
    tenants: int  # tenants owing one of them
    stepped: int  # tenants moved to another dunning state (a further step, or restored)
    unchanged: int  # tenants already at the step their invoice reaches
    unknown: int  # invoices of customers no tenant has
    failed: int  # tenants whose turn failed (logged; the next run tries again)

    def as_dict(self) -> dict[str, int]:
        return {"invoices": self.invoices, "tenants": self.tenants, "stepped": self.stepped,
                "unchanged": self.unchanged, "unknown": self.unknown, "failed": self.failed}


class OverdueInvoices:
    def __init__(self, db: Database, stripe: StripeEventsPort, catalog: Catalog,
                 policy: DunningPolicy, dunning: DunningService, notifier: Notifier, *,
                 clock: Clock = utcnow,
                 on_notices: Callable[[Sequence[int]], object] | None = None) -> None:
        self.db = db
        self.stripe = stripe
        self.catalog = catalog
        self.policy = policy
        self.dunning = dunning
        self.notifier = notifier
        self.clock = clock
        self.on_notices = on_notices  # sends the notices a turn recorded, after its commit

    def run(self) -> OverdueReport:
        """Settle the overdue step of every tenant owing an emailed invoice past its due date."""
        now = self.clock()
        latest = self.stripe.latest_clock_time()  # a test clock may be ahead of the real now
        due_before = max(now, latest) if latest is not None else now
        owing: dict[str, InvoiceRecord] = {}
        listed = 0
        for invoice in self.stripe.list_open_emailed_invoices(due_before=due_before):
            listed += 1
            # The invoice longest past due decides: it reaches the furthest step.
            held = owing.get(invoice.customer_id)
            if held is None or _due(invoice) < _due(held):
                owing[invoice.customer_id] = invoice
        counts = {"stepped": 0, "unchanged": 0, "unknown": 0, "failed": 0}
        for customer_id, invoice in owing.items():
            try:
                outcome = self._turn(customer_id, invoice)
            except UnknownCustomer:
                outcome = "unknown"
            except Exception:  # one tenant's failure does not stop the others
                log.exception("overdue check of customer %s (invoice %s) failed",
                              customer_id, invoice.id)
                outcome = "failed"
            counts[outcome] += 1
        tenants = len(owing) - counts["unknown"]
        return OverdueReport(invoices=listed, tenants=tenants, **counts)

    def _turn(self, customer_id: str, listed: InvoiceRecord) -> str:
        for run in range(1, CONFLICT_RUNS + 1):
            try:
                with self.db.session() as session:
                    ctx = HandlerContext(session, self.stripe, self.catalog, self.dunning,
                                         NoUsageFlush(), notifier=self.notifier,
                                         lock_first=run == CONFLICT_RUNS)
                    tenant = ctx.tenant_for_customer(customer_id)
                    # Days past due on Stripe's clock: nothing to do for a tenant already at
                    # the step the invoice reaches (no write, no turn taken).
                    now = self.stripe.clock_time(customer_id) or self.clock()
                    assert listed.due_date is not None, "listed by due date"
                    if overdue_step_ahead(self.policy, dunning_state(session, tenant).state,
                                          listed.due_date, now) is None:
                        return "unchanged"
                    invoice, subscription = current_invoice(ctx, listed.id)
                    note, moved = self.dunning.on_overdue_check(ctx, tenant, invoice,
                                                                subscription)
                    ctx.confirm()
                    notices = list(new_notice_ids(session))
            except StaleTenant:
                if run == CONFLICT_RUNS:
                    raise
                log.info("overdue check of customer %s: the tenant changed meanwhile; "
                         "running again on the new state", customer_id)
                continue
            log.info("overdue check: invoice %s; %s", listed.id, note)
            if notices and self.on_notices is not None:
                try:
                    self.on_notices(notices)
                except Exception:  # committed notices go out with the periodic sender anyway
                    log.exception("sending the notices of invoice %s failed", listed.id)
            return "stepped" if moved else "unchanged"
        raise AssertionError("unreachable: the last run returns or raises")


def _due(invoice: InvoiceRecord) -> float:
    return invoice.due_date.timestamp() if invoice.due_date else 0.0
