"""The inline scheduler of `meterbill serve`: one daemon thread per job of the schedule table,
each waiting for its job's next time (wall clock, UTC) and then calling `run(name)`.

With TASK_RUNNER=celery the same table goes to Celery beat instead (celery_app.py), never both.
A run that raises is logged; the next one comes at its time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from ...domain.clock import Clock, utcnow
from ...domain.schedule import Schedule

log = logging.getLogger("meterbill.jobs")


class InlineScheduler:
    def __init__(self, jobs: Iterable[tuple[str, Schedule]], run: Callable[[str], object],
                 clock: Clock = utcnow) -> None:
        self._jobs = list(jobs)
        self._run = run
        self._clock = clock
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> InlineScheduler:
        for name, schedule in self._jobs:
            thread = threading.Thread(target=self._loop, args=(name, schedule),
                                      name=f"meterbill-job-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _loop(self, name: str, schedule: Schedule) -> None:
        due = schedule.first_run(self._clock())
        while not self._stop.wait(max(0.0, (due - self._clock()).total_seconds())):
            try:
                self._run(name)
            except Exception:  # the database may be down for a while
                log.exception("scheduled job %s failed", name)
            due = schedule.next_after(max(due, self._clock()))

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout)
        self._threads.clear()
