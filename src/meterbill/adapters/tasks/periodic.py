"""A job run on a daemon thread: first `first_delay` seconds after start, then every `interval`.

`meterbill serve` runs its schedules with it: the webhook sweep (with TASK_RUNNER=celery, Celery
beat runs the sweep and the usage sync instead: see celery_app.py), the daily usage sync, the
notification sender and the due plan changes. A failed run is logged and the next one comes at
its time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("meterbill.tasks")


class PeriodicJob:
    def __init__(self, job: Callable[[], Any], interval: float, first_delay: float = 0.0,
                 name: str = "meterbill-periodic") -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._job = job
        self._interval = interval
        self._first_delay = max(0.0, first_delay)
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def start(self) -> PeriodicJob:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        delay = self._first_delay
        while not self._stop.wait(delay):
            try:
                self._job()
            except Exception:  # Stripe or the database may be down for a while
                log.exception("%s failed; the next run is in %.0f s", self._name,
                              self._interval)
            self.runs += 1
            delay = self._interval

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
