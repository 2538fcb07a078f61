"""Process one inbox row: claim it, run its handler, record the outcome.

1. Claim (committed on its own, one statement that also returns the event): the row becomes
   `processing`, owned by this worker until the lease ends. A row another worker holds, or one
   already handled, is skipped.
2. Handle, in one transaction with the handled mark: the handler's writes commit only if this
   worker still owns the row, so a worker that was presumed dead and raced its replacement
   changes nothing, and only if no other handler changed the same tenant since this one read
   it (else it runs again at once on the new state; context.py).
3. On error: the message and traceback go on the row and it is retried after a backoff, up to
   `max_attempts` attempts, then it is `dead` (logged, and an admin alert recorded with the
   dead mark; `counts()["dead"]` is the gauge). An event for a customer no tenant has is
   retried for `unknown_customer_hours`, then `parked`. A worker killed mid-handling leaves a
   claimed row whose lease runs out; the sweep hands it to another worker.
4. After the commit, the notices the transaction recorded go to `on_notices` (sent at once).
"""

from __future__ import annotations

import logging
import os
import socket
import traceback as tb
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ...adapters.db.inbox import Claimed, InboxRepository
from ...adapters.db.notifications import new_notice_ids
from ...adapters.db.session import Database
from ...domain.clock import Clock, utcnow
from ...domain.plans import Catalog
from ...ports.log_context import bound
from ...ports.metrics import metrics
from ...ports.notify import Notice, Notifier
from ...ports.webhooks import StripeEventsPort
from ..errors import LeaseLost, StaleTenant, UnknownCustomer
from ..notifications.outbox import RecordOnlyNotifier, admin_alert
from .context import (
    DunningPort,
    HandlerContext,
    InboxEvent,
    InvoiceCheckPort,
    NoInvoiceCheck,
    UsageFlushPort,
)
from .handlers import HANDLERS, Handler
from .options import WebhookOptions

log = logging.getLogger("meterbill.webhooks")


# Runs of a handler per attempt when other handlers of the same tenant keep committing first;
# the last run locks the tenant before reading Stripe (context.py).
CONFLICT_RUNS = 3


@dataclass(frozen=True)
class ProcessResult:
    row_id: int
    outcome: str  # handled, ignored, failed, dead, parked, skipped, lost
    detail: str = ""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class WebhookProcessor:
    def __init__(self, db: Database, stripe: StripeEventsPort, catalog: Catalog,
                 dunning: DunningPort, usage: UsageFlushPort, options: WebhookOptions, *,
                 handlers: Mapping[str, Handler] = HANDLERS, clock: Clock = utcnow,
                 worker: str | None = None, notifier: Notifier | None = None,
                 on_notices: Callable[[Sequence[int]], object] | None = None,
                 invoices: InvoiceCheckPort | None = None) -> None:
        self.db = db
        self.stripe = stripe
        self.catalog = catalog
        self.dunning = dunning
        self.usage = usage
        self.options = options
        self.handlers = handlers
        self.clock = clock
        self.worker = worker or worker_name()
        self.notifier = notifier or RecordOnlyNotifier()
        # Called with the ids of the notices a transaction recorded, after it committed.
        self.on_notices = on_notices
        self.invoices = invoices or NoInvoiceCheck()

    def process(self, row_id: int) -> ProcessResult:
        with self.db.session() as session:
            claimed = InboxRepository(session).claim(row_id, self.worker, now=self.clock(),
                                                     lease=self.options.lease)
        if claimed is None:
            return ProcessResult(row_id, "skipped", "not due, or claimed elsewhere")
        event = InboxEvent.parse(row_id, claimed.payload)
        with bound(event.id):  # every line of its handling names the event
            result = self._run(row_id, event, claimed)
        metrics.count("webhook_events_handled", type=event.type, outcome=result.outcome)
        return result

    def _run(self, row_id: int, event: InboxEvent, claimed: Claimed) -> ProcessResult:
        handler = self.handlers.get(event.type)
        for run in range(1, CONFLICT_RUNS + 1):
            context: HandlerContext | None = None
            try:
                with self.db.session() as session:
                    if handler is None:
                        status, note = "ignored", f"no handler for {event.type}"
                    else:
                        # The last run locks first: no more conflicts to lose.
                        context = HandlerContext(session, self.stripe, self.catalog,
                                                 self.dunning, self.usage,
                                                 notifier=self.notifier,
                                                 lock_first=run == CONFLICT_RUNS,
                                                 invoices=self.invoices)
                        status, note = "handled", handler(context, event)
                        context.confirm()
                    if not InboxRepository(session).finish(row_id, self.worker, status=status,
                                                           now=self.clock(), note=note):
                        raise LeaseLost(f"row {row_id} was taken over by another worker")
                    notices = new_notice_ids(session)
            except LeaseLost as lost:
                log.warning("webhook %s (%s): %s; its changes were rolled back", event.id,
                            event.type, lost)
                return ProcessResult(row_id, "lost", str(lost))
            except UnknownCustomer as error:
                return self._unknown_customer(row_id, event, error, claimed.received_at)
            except Exception as error:  # any handler failure is recorded and retried
                if run < CONFLICT_RUNS and self._conflict(context, error):
                    log.info("webhook %s (%s): another handler changed the tenant meanwhile; "
                             "running again on the new state", event.id, event.type)
                    continue
                return self._failed(row_id, event, error, claimed.attempts)
            log.info("webhook %s (%s) %s: %s", event.id, event.type, status, note)
            self._notices_committed(notices)
            return ProcessResult(row_id, status, note)
        raise AssertionError("unreachable: the last run returns")

    def _conflict(self, context: HandlerContext | None, error: Exception) -> bool:
        """Whether `error` came from racing another handler of the same tenant: its commit
        check failed, or it failed on something that handler had just written (a unique key)."""
        if context is None:
            return False
        if isinstance(error, StaleTenant):
            return True
        try:
            with self.db.session() as session:
                return context.stale(session)
        except Exception:
            return False

    def _notices_committed(self, notice_ids: Sequence[int]) -> None:
        if notice_ids and self.on_notices is not None:
            try:
                self.on_notices(list(notice_ids))
            except Exception:  # committed notices are sent by the periodic sender anyway
                log.exception("delivering notices %s after commit failed", list(notice_ids))

    def _failed(self, row_id: int, event: InboxEvent, error: Exception,
                attempts: int) -> ProcessResult:
        message = f"{type(error).__name__}: {error}"
        trace = "".join(tb.format_exception(error))
        dead = attempts >= self.options.max_attempts
        retry_at = None if dead else self.clock() + self.options.retry_delay(attempts)
        alert = admin_alert(
            f"webhook_dead:{event.id}:{self.clock():%Y%m%dT%H%M%S}",
            f"Webhook {event.type} {event.id} is dead",
            f"Stripe event {event.id} ({event.type}) failed {attempts} times and is dead: "
            f"{message}. Fix the cause, then run `meterbill webhooks replay {event.id}`.",
            event_id=event.id) if dead else None
        self._release(row_id, status="dead" if dead else "failed", error=message, trace=trace,
                      retry_at=retry_at, alert=alert)
        if dead:
            log.error("ALERT: webhook %s (%s) is dead after %d attempts: %s. Fix the cause, "
                      "then `meterbill webhooks replay %s`.", event.id, event.type, attempts,
                      message, event.id)
            return ProcessResult(row_id, "dead", message)
        log.warning("webhook %s (%s) attempt %d failed: %s; retry at %s", event.id, event.type,
                    attempts, message, retry_at)
        return ProcessResult(row_id, "failed", message)

    def _unknown_customer(self, row_id: int, event: InboxEvent, error: UnknownCustomer,
                          received_at: datetime) -> ProcessResult:
        give_up_at = received_at + timedelta(hours=self.options.unknown_customer_hours)
        now = self.clock()
        if now >= give_up_at:
            self._release(row_id, status="parked", error=str(error), trace=None, retry_at=None)
            log.warning("webhook %s (%s) parked: %s", event.id, event.type, error)
            return ProcessResult(row_id, "parked", str(error))
        # Retry soon (our own write may be in flight), at most at the give-up time.
        retry_at = min(now + timedelta(seconds=self.options.retry_base_seconds), give_up_at)
        self._release(row_id, status="failed", error=str(error), trace=None, retry_at=retry_at)
        return ProcessResult(row_id, "failed", str(error))

    def _release(self, row_id: int, *, status: str, error: str, trace: str | None,
                 retry_at: datetime | None, alert: Notice | None = None) -> None:
        with self.db.session() as session:
            released = InboxRepository(session).fail(row_id, self.worker, status=status,
                                                     error=error, traceback=trace,
                                                     next_attempt_at=retry_at)
            if released and alert is not None:  # the alert commits with the dead mark
                self.notifier.enqueue(session, alert)
            notices = new_notice_ids(session)
        self._notices_committed(notices)
