"""Every run of a periodic job (start, end, outcome, counts), and the leases that let one
process at a time run a job that needs a leader.

A lease is one row per job: a process takes it when it is free or expired, with one
compare-and-set UPDATE (or the first INSERT), so several `meterbill serve` processes on one
database never run a leader job twice at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from .models import Base, UTCDateTime
from .statements import rowcount, session_insert


class JobRun(Base):
    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_name_id", "name", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(String(16))  # running, ok, failed, skipped
    counts: Mapped[str] = mapped_column(Text, default="{}")  # JSON: what the run did
    error: Mapped[str | None] = mapped_column(Text)
    runner: Mapped[str] = mapped_column(String(128))  # host:pid, or celery

    @property
    def count_map(self) -> dict[str, int]:
        loaded = json.loads(self.counts or "{}")
        return {str(k): int(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


class JobLease(Base):
    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JobRunRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def start(self, name: str, at: datetime, runner: str) -> JobRun:
        run = JobRun(name=name, started_at=at, outcome="running", counts="{}", runner=runner)
        self.session.add(run)
        self.session.flush()
        return run

    def finish(self, run_id: int, at: datetime, outcome: str, counts: Mapping[str, int],
               error: str | None = None) -> None:
        self.session.execute(update(JobRun).where(JobRun.id == run_id).values(
            finished_at=at, outcome=outcome, counts=json.dumps(dict(counts), sort_keys=True),
            error=error))

    def get(self, run_id: int) -> JobRun | None:
        return self.session.get(JobRun, run_id)

    def latest_per_job(self) -> dict[str, JobRun]:
        newest = (select(func.max(JobRun.id)).group_by(JobRun.name)).scalar_subquery()
        rows = self.session.scalars(select(JobRun).where(JobRun.id.in_(newest))).all()
        return {row.name: row for row in rows}

    def recent(self, name: str | None = None, limit: int = 50) -> Sequence[JobRun]:
        query = select(JobRun).order_by(JobRun.id.desc()).limit(limit)
        if name is not None:
            query = query.where(JobRun.name == name)
        return self.session.scalars(query).all()

    def take_lease(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """True when `holder` now holds `name`'s lease until `until`."""
        taken = rowcount(self.session.execute(
            update(JobLease).where(JobLease.name == name,
                                   or_(JobLease.expires_at <= now, JobLease.holder == holder))
            .values(holder=holder, expires_at=until)))
        if taken:
            return True
        inserted = self.session.execute(
            session_insert(self.session, JobLease.__table__)
            .values(name=name, holder=holder, expires_at=until)
            .on_conflict_do_nothing().returning(JobLease.name)).first()
        return inserted is not None

    def release_lease(self, name: str, holder: str, now: datetime) -> None:
        self.session.execute(update(JobLease).where(JobLease.name == name,
                                                    JobLease.holder == holder)
                             .values(expires_at=now))
