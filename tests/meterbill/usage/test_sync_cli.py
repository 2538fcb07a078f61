"""`meterbill usage sync` / `reconcile`, the schedule in `serve` and the Celery beat entry."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from meterbill.adapters.tasks import celery_app
from meterbill.adapters.tasks.periodic import PeriodicJob
from meterbill.bootstrap import Container
from meterbill.entrypoints.cli import CliContext, app
from meterbill.entrypoints.cli import usage_sync as usage_cli
from stripe_sandbox import Sandbox

from .sync_helpers import World, event, make_world


@pytest.fixture
def world(container: Container, sandbox: Sandbox) -> Iterator[World]:
    # The CLI's sync runs on real time: the tenants' test clock stands at now.
    yield make_world(container, sandbox, start=datetime.now(UTC).replace(microsecond=0))


def cli(container: Container, *args: str) -> tuple[int, str]:
    context = CliContext(settings_factory=lambda: container.settings,
                         container_factory=lambda _settings: container,
                         close_container=False, lasting_sandbox=False)
    result = CliRunner().invoke(app, list(args), obj=context)
    return result.exit_code, result.stdout


def test_sync_and_reconcile_commands(world: World, container: Container) -> None:
    world.subscribe("acme")
    now = world.now()
    container.usage_store.insert([event("acme", now - timedelta(days=1), 40),
                                  event("acme", now - timedelta(days=2), 2)])
    since = (now - timedelta(days=3)).date().isoformat()

    code, out = cli(container, "usage", "sync", "--since", since, "--json")
    assert code == 0, out
    data = json.loads(out)
    assert (data["counts"]["sent"], data["sent"], data["calls"]) == (1, 42, 2)
    assert data["tenants"][0]["tenant_id"] == "acme"

    code, out = cli(container, "usage", "sync", "--since", since)
    assert code == 0 and "unchanged 1" in out and "0 Stripe call" in out

    # The current period began today: compare the calendar month of yesterday instead.
    month = (now - timedelta(days=1)).strftime("%Y-%m")
    code, out = cli(container, "usage", "reconcile", "--period", month, "--json")
    assert code == 0, out
    [acme] = json.loads(out)["tenants"]
    assert (acme["status"], acme["diff"]) == ("ok", 0)

    # Unsynced usage of a past day: a drift, and exit 1 for cron.
    container.usage_store.insert([event("acme", now - timedelta(days=1), 5)])
    code, out = cli(container, "usage", "reconcile", "--period", month)
    assert code == 1 and "drift" in out and "acme" in out


def test_sync_reports_failures_with_exit_1(world: World, container: Container) -> None:
    world.subscribe("acme")
    used = world.now() - timedelta(hours=2)
    container.usage_store.insert([event("acme", used, 3)])
    world.client.v1.customers.delete(world.tenants["acme"].customer_id)
    code, out = cli(container, "usage", "sync", "--date", used.date().isoformat())
    assert code == 1 and "failed" in out and "acme" in out


@pytest.mark.parametrize("args, message", [
    (("--date", "2026-05-01", "--since", "2026-04-01"), "not both"),
    (("--date", "yesterday"), "YYYY-MM-DD"),
])
def test_sync_refuses_bad_options(container: Container, args: tuple[str, ...],
                                  message: str) -> None:
    context = CliContext(settings_factory=lambda: container.settings,
                         container_factory=lambda _settings: container,
                         close_container=False, lasting_sandbox=False)
    result = CliRunner().invoke(app, ["usage", "sync", *args], obj=context)
    assert result.exit_code == 2
    assert message in result.stderr


def test_the_periodic_job_runs_first_soon_then_every_interval() -> None:
    calls: list[float] = []
    done = threading.Event()

    def job() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("a failed run is logged, the schedule goes on")
        done.set()

    periodic = PeriodicJob(job, interval=0.05, first_delay=0.0).start()
    try:
        assert done.wait(5)
    finally:
        periodic.stop()
    assert len(calls) >= 2 and periodic.runs >= 2
    with pytest.raises(ValueError):
        PeriodicJob(job, interval=0)


def test_serve_schedules_the_daily_job(container: Container) -> None:
    fast = container.settings.model_copy(update={"usage_sync_interval_seconds": 3600.0,
                                                 "usage_sync_first_run_seconds": 0.0})
    container.settings = fast
    with usage_cli.scheduled_usage_sync(container) as job:
        assert isinstance(job, PeriodicJob)
        deadline = time.monotonic() + 5
        while job.runs < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert job.runs == 1
    container.settings = fast.model_copy(update={"task_runner": "celery"})
    with usage_cli.scheduled_usage_sync(container) as job:
        assert job is None  # Celery beat runs it instead
    container.settings = fast.model_copy(update={"usage_sync_interval_seconds": 0.0})
    with usage_cli.scheduled_usage_sync(container) as job:
        assert job is None


def test_celery_beat_schedules_the_usage_job(container: Container) -> None:
    made = celery_app.make_celery("memory://", usage_sync_interval_seconds=3600.0)
    entry = made.conf.beat_schedule["meterbill-usage-sync"]
    assert entry == {"task": celery_app.USAGE_SYNC_TASK, "schedule": 3600.0}
    off = celery_app.make_celery("memory://", usage_sync_interval_seconds=0)
    assert "meterbill-usage-sync" not in off.conf.beat_schedule

    calls: list[str] = []

    class Spy:  # the container the task builds: its sync and reconciliation are watched
        @property
        def usage_sync(self) -> Any:
            calls.append("sync")
            return container.usage_sync

        @property
        def usage_reconcile(self) -> Any:
            calls.append("reconcile")
            return container.usage_reconcile

    # Only the usage task: registering the webhook tasks here would leave shared tasks with a
    # dummy `components` behind for the Celery apps of later tests.
    celery_app.register_usage_task(made, Spy)
    summary = made.tasks[celery_app.USAGE_SYNC_TASK].run()
    assert calls == ["sync", "reconcile"]
    assert summary == {"sync": {"unchanged": 0, "skipped": 0, "sent": 0, "corrected": 0,
                                "failed": 0}, "drifts": 0}


def test_many_tenants_get_a_progress_bar(world: World, container: Container,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("acme", "globex"):
        world.subscribe(name)
    container.usage_store.insert([event(t, world.now() - timedelta(days=1), 2)
                                  for t in ("acme", "globex")])
    advanced: list[str] = []
    real = usage_cli._progress

    def watched(total: int, as_json: bool) -> Any:
        assert total == 2
        return real(total, as_json)

    monkeypatch.setattr(usage_cli, "PROGRESS_FROM", 1)
    monkeypatch.setattr(usage_cli, "_progress", watched)
    monkeypatch.setattr("rich.progress.Progress.advance",
                        lambda self, task, advance=1: advanced.append(str(task)))
    since = (world.now() - timedelta(days=2)).date().isoformat()
    code, out = cli(container, "usage", "sync", "--since", since)
    assert code == 0, out
    assert "sent 2" in out and len(advanced) == 2
