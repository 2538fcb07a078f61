"""`/ready`: whether this server can do its work now. Unlike `/health` (liveness: the process
answers and its database schema is current) it also asks the usage store, Stripe (at most once
per cache period), the scheduler's heartbeat (the newest job run) and the webhook inbox's age.
Each check answers ok or what is wrong; any failure makes the answer 503."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ...adapters.db.job_runs import JobRunRepository
from ...adapters.db.operations import OperationsReads
from ...adapters.db.session import Database
from ...domain.clock import Clock, utcnow


@dataclass(frozen=True)
class ReadyChecks:
    """The outside things a readiness answer asks; each raises (or returns a problem)."""

    schema: Callable[[], str | None]  # None: current; else what is wrong
    usage_store: Callable[[], None]
    stripe: Callable[[], None]


class Readiness:
    def __init__(self, db: Database, checks: ReadyChecks, *, stripe_cache_seconds: float,
                 heartbeat_within: timedelta | None, inbox_age_limit: timedelta,
                 clock: Clock = utcnow) -> None:
        self.db = db
        self.checks = checks
        self.stripe_cache_seconds = stripe_cache_seconds
        self.heartbeat_within = heartbeat_within  # None: no schedule to beat
        self.inbox_age_limit = inbox_age_limit
        self.clock = clock
        self.started = clock()
        self._stripe_ok_at: float | None = None
        self._lock = threading.Lock()

    def check(self) -> tuple[bool, dict[str, str]]:
        results = {"database": _run(self.checks.schema),
                   "usage_store": _run(self.checks.usage_store),
                   "stripe": self._stripe()}
        if results["database"] == "ok":
            results.update(self._from_database())
        return all(v == "ok" for v in results.values()), results

    def _stripe(self) -> str:
        with self._lock:
            fresh = self._stripe_ok_at is not None and \
                time.monotonic() - self._stripe_ok_at < self.stripe_cache_seconds
        if fresh:
            return "ok"
        answer = _run(self.checks.stripe)
        if answer == "ok":
            with self._lock:
                self._stripe_ok_at = time.monotonic()
        return answer

    def _from_database(self) -> dict[str, str]:
        now = self.clock()
        with self.db.session() as session:
            oldest = OperationsReads(session).oldest_unhandled()
            runs = JobRunRepository(session).latest_per_job()
        found: dict[str, str] = {}
        newest: datetime | None = max((r.started_at for r in runs.values()), default=None)
        if self.heartbeat_within is None:
            found["scheduler"] = "ok"
        elif newest is not None and now - newest <= self.heartbeat_within:
            found["scheduler"] = "ok"
        elif newest is None and now - self.started <= self.heartbeat_within:
            found["scheduler"] = "ok"  # just started: the first run is not due yet
        else:
            since = f"since {newest.isoformat()}" if newest else "ever"
            found["scheduler"] = (f"no job has run {since}: is `meterbill serve` (inline) or "
                                  "`meterbill worker --beat` running?")
        if oldest is not None and now - oldest > self.inbox_age_limit:
            minutes = int((now - oldest).total_seconds() // 60)
            found["inbox"] = (f"the oldest unhandled webhook event is {minutes} min old: see "
                              "`meterbill webhooks list --status failed`")
        else:
            found["inbox"] = "ok"
        return found


def _run(check: Callable[[], str | None]) -> str:
    try:
        problem = check()
    except Exception as error:  # the class says what failed, never a URL or a key
        return f"unreachable ({type(error).__name__})"
    return problem or "ok"
