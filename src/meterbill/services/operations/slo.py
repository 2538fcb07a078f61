"""Service-level objectives: measure each over its window, judge it (`domain.slo`), keep its
state and since when (`slo_states`), and alert once when a breach starts and once when it ends.

`status()` answers `GET /status` and `meterbill status` (read only); `check()` is the
`slo-check` job's run, the only writer of the states and their alerts. `gauges()` are the
database-read gauges of `/metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from ...adapters.db.notifications import new_notice_ids
from ...adapters.db.operations import OperationsReads, SloState
from ...adapters.db.reconciliation import DriftRepository
from ...adapters.db.session import Database, DbSession
from ...domain.clock import Clock, utcnow
from ...domain.money import round_cents
from ...domain.plans import Catalog
from ...domain.slo import Slo
from ...ports.notify import Notifier
from ..notifications.outbox import admin_alert
from ..views import _View

log = logging.getLogger("meterbill.slo")

# name: (help, {label values: value}, label names), as adapters.metrics.StateCollector reads.
Gauges = dict[str, tuple[str, dict[tuple[str, ...], float], tuple[str, ...]]]


@dataclass(frozen=True)
class SloStatus(_View):
    name: str
    description: str
    objective: str  # ">= 0.99 ratio"
    window: str
    value: str | None  # None: nothing to measure in the window
    ok: bool
    since: datetime | None  # when the current state (ok or breach) began; None: never checked


class SloService:
    def __init__(self, db: Database, slos: Sequence[Slo], catalog: Catalog,
                 notifier: Notifier, *, usage_sync_interval: timedelta,
                 clock: Clock = utcnow,
                 on_notices: Callable[[Sequence[int]], object] | None = None) -> None:
        self.db = db
        self.slos = tuple(slos)
        self.catalog = catalog
        self.notifier = notifier
        self.usage_sync_interval = usage_sync_interval
        self.clock = clock
        self.on_notices = on_notices

    def status(self) -> list[SloStatus]:
        """Every objective now: value, objective, ok or breach, and since when."""
        now = self.clock()
        with self.db.session() as session:
            reads = OperationsReads(session)
            states = reads.slo_states()
            values = self._measure(reads, now)
        result = []
        for slo in self.slos:
            value, ok = values[slo.name], slo.met(values[slo.name])
            state = states.get(slo.name)
            since = state.since if state is not None and (state.state == "ok") == ok else None
            result.append(SloStatus(slo.name, slo.description, slo.describe(),
                                    _window(slo.window), _text(value), ok, since))
        return result

    def check(self) -> dict[str, int]:
        """Measure, keep each state, alert on each change of state (breach, recovery)."""
        now = self.clock()
        with self.db.session() as session:
            reads = OperationsReads(session)
            states = reads.slo_states()
            values = self._measure(reads, now)
            breaches = changes = 0
            for slo in self.slos:
                value = values[slo.name]
                state = "ok" if slo.met(value) else "breach"
                breaches += state == "breach"
                old = states.get(slo.name)
                if old is not None and old.state == state:
                    old.value, old.checked_at = _text(value), now
                    continue
                reads.save_slo_state(SloState(name=slo.name, state=state, since=now,
                                              value=_text(value), checked_at=now))
                if old is None and state == "ok":
                    continue  # the first check of a healthy objective is no news
                changes += 1
                self._alert(session, slo, state, value, now)
            notices = list(new_notice_ids(session))
        if notices and self.on_notices is not None:
            self.on_notices(notices)
        return {"objectives": len(self.slos), "breaches": breaches, "changes": changes}

    def gauges(self) -> Gauges:
        """The state of things, read from the database when /metrics is scraped."""
        now = self.clock()
        with self.db.session() as session:
            reads = OperationsReads(session)
            outcomes = reads.inbox_outcomes(now - timedelta(days=30))
            oldest = reads.oldest_unhandled()
            access = reads.tenants_by_access()
            open_drifts = DriftRepository(session).open_count()
            values = self._measure(reads, now)
        slo_values: dict[tuple[str, ...], float] = {
            (name,): float(value) for name, value in values.items() if value is not None}
        return {
            "inbox_backlog": ("Webhook events received and not yet handled",
                              {(): float(sum(outcomes.get(s, 0) for s in
                                             ("received", "processing", "failed")))}, ()),
            "inbox_dead": ("Webhook events that exhausted their attempts (last 30 days)",
                           {(): float(outcomes.get("dead", 0))}, ()),
            "inbox_oldest_unhandled_seconds": (
                "Age of the oldest webhook event not yet handled (0: none)",
                {(): (now - oldest).total_seconds() if oldest else 0.0}, ()),
            "tenants": ("Tenants by access level",
                        {(level,): float(n) for level, n in access.items()}, ("access",)),
            "drifts_open": ("Reconciliation drifts no run could fix",
                            {(): float(open_drifts)}, ()),
            "slo_value": ("Each objective's measured value (docs/operations.md)",
                          slo_values, ("slo",)),
            "slo_ok": ("1 when the objective is met, 0 in breach",
                       {(s.name,): float(s.met(values[s.name])) for s in self.slos}, ("slo",)),
        }

    # --- measures -----------------------------------------------------------------------------

    def _measure(self, reads: OperationsReads, now: datetime) -> dict[str, Decimal | None]:
        measures: dict[str, Callable[[OperationsReads, datetime, datetime], Decimal | None]] = {
            "webhook_success": _webhook_success,
            "payment_first_attempt": _first_attempt,
            "usage_sync_lag_hours": self._sync_lag,
            "invoice_generation_failures":
                lambda r, now, since: Decimal(r.invoice_failures(since)),
            "drifts_open":
                lambda r, now, since: Decimal(DriftRepository(r.session).open_count()),
            "unreconciled_cents": self._unreconciled,
            "inbox_age_minutes": _inbox_age,
        }
        return {slo.name: measures[slo.name](reads, now, now - slo.window) for slo in self.slos}

    def _sync_lag(self, reads: OperationsReads, now: datetime,
                  since: datetime) -> Decimal | None:
        last = reads.last_good_run("usage-sync")
        if last is None:
            return None  # never ran: nothing to be late against
        late = (now - last - self.usage_sync_interval).total_seconds() / 3600
        return Decimal(str(round(max(late, 0.0), 2)))

    def _unreconciled(self, reads: OperationsReads, now: datetime,
                      since: datetime) -> Decimal | None:
        drifts = reads.usage_drift(since)
        plans = reads.plans([tenant for tenant, _ in drifts])
        total = 0
        for tenant, diff in drifts:
            key = plans.get(tenant)
            if key is None or key not in self.catalog.keys():
                continue
            total += round_cents(diff * self.catalog.get(key).overage_unit_amount)
        return Decimal(total)

    def _alert(self, session: DbSession, slo: Slo, state: str, value: Decimal | None,
               now: datetime) -> None:
        stamp = now.isoformat()
        if state == "breach":
            subject = f"SLO breach: {slo.name} is {_text(value)} (objective {slo.describe()})"
        else:
            subject = f"SLO recovered: {slo.name} is {_text(value)} ({slo.describe()})"
        detail = (f"{slo.description}; measured over {_window(slo.window)}. "
                  "docs/operations.md says what to do.")
        log.warning("%s", subject)
        self.notifier.enqueue(session, admin_alert(f"slo:{slo.name}:{state}:{stamp}",
                                                   subject, detail))


def _webhook_success(reads: OperationsReads, now: datetime, since: datetime) -> Decimal | None:
    counts = reads.inbox_outcomes(since)
    good = counts.get("handled", 0) + counts.get("ignored", 0)
    bad = counts.get("dead", 0) + counts.get("parked", 0) + counts.get("failed", 0)
    return _ratio(good, good + bad)


def _first_attempt(reads: OperationsReads, now: datetime, since: datetime) -> Decimal | None:
    paid, made = reads.first_attempts(since)
    return _ratio(paid, made)


def _inbox_age(reads: OperationsReads, now: datetime, since: datetime) -> Decimal | None:
    oldest = reads.oldest_unhandled()
    if oldest is None:
        return Decimal(0)
    return Decimal(str(round((now - oldest).total_seconds() / 60, 1)))


def _ratio(part: int, whole: int) -> Decimal | None:
    return None if whole == 0 else (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"))


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _window(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

