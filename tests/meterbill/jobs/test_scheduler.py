"""The inline scheduler runs each job of its table at the job's times."""

from __future__ import annotations

import threading
import time

from meterbill.adapters.tasks.scheduler import InlineScheduler
from meterbill.domain.schedule import Every


def test_each_job_runs_at_its_own_interval_until_stopped() -> None:
    runs: dict[str, int] = {"fast": 0, "slow": 0}
    lock = threading.Lock()

    def run(name: str) -> None:
        with lock:
            runs[name] += 1
        if name == "fast" and runs["fast"] == 2:
            raise RuntimeError("a failed run does not stop the schedule")

    scheduler = InlineScheduler([("fast", Every(0.05)), ("slow", Every(60, first_delay=60))],
                                run).start()
    deadline = time.monotonic() + 5
    while runs["fast"] < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    scheduler.stop()
    settled = dict(runs)
    time.sleep(0.15)
    assert settled["fast"] >= 4
    assert settled["slow"] == 0  # its first run is a minute away
    assert runs == settled  # nothing runs after stop
