"""Running jobs of the schedule table: each run recorded with its outcome and counts; a
leader job runs in one process at a time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from meterbill.bootstrap import Container
from meterbill.domain.errors import NotFound
from meterbill.domain.schedule import Every
from meterbill.services.jobs import Job, JobRunner


def _job(name: str, action, *, leader: bool = False) -> Job:  # type: ignore[no-untyped-def]
    return Job(name, Every(60), action, leader, f"test job {name}")


def test_runs_are_recorded_with_outcome_and_counts(container: Container) -> None:
    def broken() -> dict[str, int]:
        raise RuntimeError("Stripe is down")

    runner = JobRunner(container.db, [_job("count", lambda: {"sent": 3}), _job("broken", broken)])
    ok = runner.run("count")
    assert (ok.outcome, ok.counts, ok.error) == ("ok", {"sent": 3}, None)
    assert ok.finished_at is not None and ok.finished_at >= ok.started_at
    failed = runner.run("broken")
    assert failed.outcome == "failed" and failed.error == "RuntimeError: Stripe is down"
    status = {s.name: s for s in runner.status()}
    assert status["count"].last_run == ok
    assert status["broken"].last_run is not None and status["broken"].last_run.id == failed.id
    assert [run.id for run in runner.history()] == [failed.id, ok.id]
    assert [run.id for run in runner.history("count")] == [ok.id]


def test_a_job_never_run_has_no_last_run_and_unknown_names_are_refused(
        container: Container) -> None:
    runner = JobRunner(container.db, [_job("idle", lambda: {})])
    assert runner.status()[0].last_run is None
    with pytest.raises(NotFound, match="No job named 'nope'. Jobs: idle"):
        runner.run("nope")


def test_a_leader_job_is_skipped_while_another_process_holds_its_lease(
        container: Container) -> None:
    inside, release = threading.Event(), threading.Event()

    def slow() -> dict[str, int]:
        inside.set()
        assert release.wait(10)
        return {"done": 1}

    first = JobRunner(container.db, [_job("sync", slow, leader=True)], runner="host-a:1")
    second = JobRunner(container.db, [_job("sync", lambda: {"done": 1}, leader=True)],
                       runner="host-b:2")
    results = []
    thread = threading.Thread(target=lambda: results.append(first.run("sync")))
    thread.start()
    assert inside.wait(10)
    skipped = second.run("sync")
    release.set()
    thread.join(10)
    assert skipped.outcome == "skipped" and "lease" in (skipped.error or "")
    assert results[0].outcome == "ok"
    # released after the run: the other process may run it now
    assert second.run("sync").outcome == "ok"


def test_an_expired_lease_is_taken_over(container: Container) -> None:
    now = [datetime(2026, 12, 6, tzinfo=UTC)]
    crashed = JobRunner(container.db, [_job("sync", lambda: {}, leader=True)],
                        clock=lambda: now[0], runner="host-a:1")
    with container.db.session() as session:  # a holder that died mid-run
        from meterbill.adapters.db.job_runs import JobRunRepository

        assert JobRunRepository(session).take_lease("sync", "host-a:1", now[0],
                                                    now[0] + timedelta(hours=1))
    other = JobRunner(container.db, [_job("sync", lambda: {"n": 1}, leader=True)],
                      clock=lambda: now[0], runner="host-b:2")
    assert other.run("sync").outcome == "skipped"
    now[0] += timedelta(hours=2)
    assert other.run("sync").outcome == "ok"
    assert crashed.run("sync").outcome == "ok"  # released by host-b: free again
