"""The one schedule table: the inline scheduler of `serve` and Celery beat run the same jobs,
each run through the job runner (recorded), never both at once."""

from __future__ import annotations

from meterbill.adapters.tasks import celery_app
from meterbill.bootstrap import Container
from meterbill.bootstrap.jobs import schedules
from meterbill.domain.schedule import Every
from meterbill.entrypoints.cli.server import _start_schedule

ALL = {"webhook-sweep", "notifications", "usage-sync", "overdue-invoices",
       "subscription-reconcile", "webhook-catch-up", "webhook-catch-up-daily", "slo-check",
       "invoice-review"}


def test_beat_and_the_inline_scheduler_read_the_same_table(container: Container) -> None:
    table = {job.name: job.schedule for job in container.jobs.jobs.values()}
    assert set(table) == ALL
    assert table == schedules(container.settings)
    beat = celery_app.make_celery("memory://", schedule=schedules(container.settings))
    entries = beat.conf.beat_schedule
    assert {entry["args"][0] for entry in entries.values()} == ALL
    for entry in entries.values():
        name = entry["args"][0]
        assert entry["task"] == celery_app.RUN_JOB_TASK
        schedule = table[name]
        if isinstance(schedule, Every):
            assert entry["schedule"] == schedule.seconds
        else:  # a daily job: beat's crontab at the same hour and minute
            assert (entry["schedule"].hour, entry["schedule"].minute) == (
                {schedule.at.hour}, {schedule.at.minute})


def test_beats_task_runs_the_job_through_the_runner(container: Container) -> None:
    app = celery_app.make_celery("memory://", schedule=schedules(container.settings))
    celery_app.register_tasks(app, processor=lambda: None, run_job=container.jobs.run)
    assert app.tasks[celery_app.RUN_JOB_TASK].run("usage-sync") == "usage-sync"
    last = {status.name: status.last_run for status in container.jobs.status()}["usage-sync"]
    assert last is not None and last.outcome == "ok"
    # the daily job synced, then reconciled: its report's counts, nested keys dotted
    assert {"sync.sent", "sync.failed", "drifts"} <= set(last.counts)


def test_a_switched_off_job_is_not_in_the_table(container: Container) -> None:
    off = container.settings.model_copy(update={"usage_sync_interval_seconds": 0.0})
    assert "usage-sync" not in schedules(off)
    assert set(schedules(off)) == ALL - {"usage-sync"}


def test_serve_runs_the_table_only_without_celery(container: Container) -> None:
    scheduler = _start_schedule(container)
    assert scheduler is not None
    scheduler.stop()
    container.settings = container.settings.model_copy(update={"task_runner": "celery"})
    assert _start_schedule(container) is None  # beat runs it instead


def test_the_overdue_job_runs_daily_with_a_leader_and_can_be_switched_off(
        container: Container) -> None:
    job = container.jobs.job("overdue-invoices")
    assert job.leader and job.schedule == Every(86400.0, first_delay=120.0)
    off = container.settings.model_copy(update={"overdue_check_interval_seconds": 0.0})
    assert set(schedules(off)) == ALL - {"overdue-invoices"}
    run = container.jobs.run("overdue-invoices")  # nothing owed: a recorded run of zeros
    assert run.outcome == "ok" and run.counts == {
        "invoices": 0, "tenants": 0, "stepped": 0, "unchanged": 0, "unknown": 0, "failed": 0}
