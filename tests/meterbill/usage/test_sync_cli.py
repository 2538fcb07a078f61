"""`meterbill usage sync` / `reconcile`, the schedule in `serve` and the Celery beat entry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

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
