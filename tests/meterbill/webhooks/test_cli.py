"""`meterbill webhooks list|show|replay|catch-up`, on the test's container and sandbox."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
import typer
from typer.testing import CliRunner

from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents
from meterbill.entrypoints.cli.context import CliContext
from meterbill.entrypoints.cli.webhooks import parse_since, webhooks_app
from meterbill.ports.webhooks import parse_event

from .conftest import Renewal, event_body, fake_event, inbox_rows, tenant_state


@pytest.fixture
def run(container: Container):  # type: ignore[no-untyped-def]
    app = typer.Typer()
    app.add_typer(webhooks_app, name="webhooks")
    # The container brings its own in-process sandbox: tell the CLI to use it as it is (the
    # name of that switch is the CLI's own business, so pass whichever it has).
    names = {f.name for f in dataclasses.fields(CliContext)}
    own_sandbox = {k: v for k, v in (("allow_ephemeral_sandbox", True),
                                     ("lasting_sandbox", False)) if k in names}
    context = CliContext(settings_factory=lambda: container.settings,
                         container_factory=lambda _settings: container,
                         close_container=False, **own_sandbox)

    def invoke(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, ["webhooks", *args], obj=context)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.output

    return invoke


def test_catch_up_stores_and_processes_only_the_missing_events(
        run, hooks: WebhookComponents, container: Container,  # type: ignore[no-untyped-def]
        renewal: Renewal) -> None:
    delivered = renewal.events[: len(renewal.events) // 2]
    for event in delivered:
        hooks.intake.store(parse_event(event_body(event)))
    code, output = run("catch-up", "--since", "1d", "--json")
    assert code == 0, output
    result = json.loads(output)
    missing = {e["id"] for e in renewal.events} - {e["id"] for e in delivered}
    assert missing <= set(result["inserted"])
    assert not set(result["inserted"]) & {e["id"] for e in delivered}
    rows = {r.event_id: r for r in inbox_rows(container)}
    assert all(rows[i].status in ("handled", "ignored") for i in missing)
    # Catching up twice finds nothing new.
    code, output = run("catch-up", "--since", "1d", "--json")
    assert json.loads(output)["inserted"] == []


def test_list_show_and_replay(run, hooks: WebhookComponents,  # type: ignore[no-untyped-def]
                              container: Container, renewal: Renewal) -> None:
    paid = next(e for e in renewal.events if e["type"] == "invoice.paid")
    receipt = hooks.intake.store(parse_event(event_body(paid)))
    hooks.intake.store(parse_event(fake_event("product.created")))
    code, output = run("list", "--json")
    assert code == 0
    listed = json.loads(output)
    assert listed["counts"]["received"] == 1 and listed["counts"]["ignored"] == 1
    assert len(listed["data"]) == 2
    code, output = run("show", paid["id"], "--json")
    shown = json.loads(output)
    assert shown["id"] == receipt.row_id and json.loads(shown["payload"])["id"] == paid["id"]
    code, output = run("replay", paid["id"], "--json")
    assert code == 0, output
    assert json.loads(output)["data"][0]["status"] == "handled"
    assert tenant_state(container, renewal.tenant_id)["payment_failures"] == 0
    code, output = run("show", "evt_nope")
    assert code == 1 and "No webhook event evt_nope" in output


def test_replay_failed_runs_every_failed_row_again(
        run, hooks: WebhookComponents, container: Container,  # type: ignore[no-untyped-def]
        renewal: Renewal) -> None:
    created = next(e for e in renewal.events if e["type"] == "customer.subscription.created")
    receipt = hooks.intake.store(parse_event(event_body(created)))
    assert receipt.row_id is not None
    hooks.processor.handlers = {created["type"]: _explode}
    assert hooks.processor.process(receipt.row_id).outcome == "failed"
    code, output = run("list", "--status", "failed", "--json")
    assert [r["event_id"] for r in json.loads(output)["data"]] == [created["id"]]
    code, output = run("replay", "--failed", "--json")  # with the real handlers again
    assert code == 0, output
    assert [r["status"] for r in json.loads(output)["data"]] == ["handled"]
    assert tenant_state(container, renewal.tenant_id)["billing_status"] == "active"
    code, output = run("replay")
    assert code == 2


def _explode(ctx: object, event: object) -> str:
    raise RuntimeError("boom")


def test_parse_since() -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert parse_since("3d", now) == now - timedelta(days=3)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01T10:00:00+01:00").hour == 10
