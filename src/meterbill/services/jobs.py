"""Running a periodic job and recording the run: the one path for the inline scheduler of
`meterbill serve`, Celery beat's task and `meterbill jobs run`.

A job that needs a leader first takes its lease (adapters/db/job_runs.py); a process that
cannot is recorded as `skipped`, so several servers on one database run it once.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import perf_counter as wall

from ..adapters.db.job_runs import JobRun, JobRunRepository
from ..adapters.db.session import Database
from ..domain.clock import Clock, utcnow
from ..domain.errors import NotFound
from ..domain.schedule import Schedule
from ..ports.log_context import bound
from ..ports.metrics import metrics
from .views import _View

log = logging.getLogger("meterbill.jobs")


@dataclass(frozen=True)
class Job:
    name: str
    schedule: Schedule
    action: Callable[[], Mapping[str, int]]  # what it did, as counts
    leader: bool  # True: one process at a time (its run is not safe to repeat at once)
    description: str
    lease_seconds: float = 3600.0  # longer than a run can take


@dataclass(frozen=True)
class JobRunView(_View):
    id: int
    name: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    counts: dict[str, int]
    error: str | None
    runner: str


@dataclass(frozen=True)
class JobStatus(_View):
    name: str
    schedule: str
    leader: bool
    description: str
    last_run: JobRunView | None


def _measured(job: str, outcome: str, seconds: float) -> None:
    metrics.count("job_runs", job=job, outcome=outcome)
    metrics.observe("job_seconds", seconds, job=job)


def _view(row: JobRun) -> JobRunView:
    return JobRunView(row.id, row.name, row.started_at, row.finished_at, row.outcome,
                      row.count_map, row.error, row.runner)


class JobRunner:
    def __init__(self, db: Database, jobs: Sequence[Job], clock: Clock = utcnow,
                 runner: str | None = None) -> None:
        self.db = db
        self.jobs = {job.name: job for job in jobs}
        self.clock = clock
        self.runner = runner or f"{socket.gethostname()}:{os.getpid()}"

    def job(self, name: str) -> Job:
        try:
            return self.jobs[name]
        except KeyError:
            raise NotFound(f"No job named {name!r}. Jobs: {', '.join(sorted(self.jobs))}",
                           field="name") from None

    def run(self, name: str) -> JobRunView:
        """Run `name` now (unless another process holds its lease) and record the run."""
        job = self.job(name)
        started = self.clock()
        with self.db.session() as session:
            repo = JobRunRepository(session)
            run_id = repo.start(job.name, started, self.runner).id
            leased = not job.leader or repo.take_lease(
                job.name, self.runner, started, started + timedelta(seconds=job.lease_seconds))
            if not leased:
                repo.finish(run_id, started, "skipped", {},
                            "another process holds this job's lease")
        if not leased:
            return self._read(run_id)
        outcome, counts, error, began = "ok", {}, None, wall()
        try:
            with bound(f"job:{job.name}:{run_id}"):
                counts = {str(k): int(v) for k, v in job.action().items()}
        except Exception as failure:  # recorded and logged; the next run comes at its time
            log.exception("job %s failed", job.name)
            outcome, error = "failed", f"{type(failure).__name__}: {failure}"[:2000]
        _measured(job.name, outcome, wall() - began)
        with self.db.session() as session:
            repo = JobRunRepository(session)
            repo.finish(run_id, self.clock(), outcome, counts, error)
            if job.leader:
                repo.release_lease(job.name, self.runner, self.clock())
        return self._read(run_id)

    def status(self) -> list[JobStatus]:
        """Every job of the table with its newest run."""
        with self.db.session() as session:
            latest = JobRunRepository(session).latest_per_job()
            return [JobStatus(job.name, job.schedule.describe(), job.leader, job.description,
                              _view(latest[job.name]) if job.name in latest else None)
                    for job in self.jobs.values()]

    def history(self, name: str | None = None, limit: int = 50) -> list[JobRunView]:
        if name is not None:
            self.job(name)
        with self.db.session() as session:
            return [_view(row) for row in JobRunRepository(session).recent(name, limit)]

    def _read(self, run_id: int) -> JobRunView:
        with self.db.session() as session:
            row = JobRunRepository(session).get(run_id)
            assert row is not None, "a run this runner recorded"
            return _view(row)
