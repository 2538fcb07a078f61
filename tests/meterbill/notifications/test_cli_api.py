"""`meterbill notifications ...` and `GET /notifications`: the outbox for people and consoles."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from meterbill.bootstrap import Container
from meterbill.entrypoints.api import create_app
from meterbill.entrypoints.cli import CliContext, app
from stripe_sandbox import Sandbox

from ..conftest import API_TOKEN, make_container, make_settings
from ..smtp import SmtpServer
from .conftest import enqueue, reminder


def run(container: Container, *args: str) -> Result:
    context = CliContext(settings_factory=lambda: container.settings,
                         container_factory=lambda _settings: container,
                         close_container=False, lasting_sandbox=False)
    return CliRunner().invoke(app, list(args), obj=context)


@pytest.fixture
def held(database_url: str, sandbox: Sandbox) -> Iterator[Container]:
    container = make_container(make_settings(database_url), sandbox, sync=False)
    try:
        yield container
    finally:
        container.close()


def test_list_and_show_the_held_outbox(held: Container) -> None:
    enqueue(held, reminder())
    enqueue(held, reminder(dedupe_key="other:1", email="b@other.test"))
    result = run(held, "notifications", "list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["delivery"] == "held" and data["counts"]["held"] == 2
    assert [row["recipient"] for row in data["data"]] == ["b@other.test", "ap@acme.test"]
    only = json.loads(run(held, "notifications", "list", "--tenant", "acme", "--status",
                          "held", "--json").stdout)
    assert only["data"][0]["subject"] == "Your payment of $49.00 did not go through"
    first = data["data"][-1]["id"]
    shown = run(held, "notifications", "show", str(first))
    assert shown.exit_code == 0, shown.output
    assert "Pay the invoice: https://invoice.example/i/in_1?x=1&y=2" in shown.stdout
    people = run(held, "notifications", "list")
    assert "SMTP_URL is not set" in people.stdout and "held 2" in people.stdout
    bad = run(held, "notifications", "list", "--status", "lost")
    assert bad.exit_code == 2 and "use one of pending" in bad.output
    missing = run(held, "notifications", "show", "999", "--json")
    assert missing.exit_code == 1 and "unknown_notification" in missing.stdout


def test_send_and_retry(database_url: str, sandbox: Sandbox, smtp_server: SmtpServer) -> None:
    container = make_container(make_settings(database_url, smtp_url=smtp_server.url,
                                             notification_max_attempts=1), sandbox, sync=False)
    try:
        enqueue(container, reminder())
        smtp_server.failing = True
        sent = json.loads(run(container, "notifications", "send", "--json").stdout)
        assert (sent["sent"], sent["failed"]) == (0, 1)  # one attempt allowed: failed
        smtp_server.failing = False
        [row] = json.loads(run(container, "notifications", "list", "--json").stdout)["data"]
        assert row["status"] == "failed" and "451" in row["last_error"]
        retried = run(container, "notifications", "retry", str(row["id"]), "--json")
        assert retried.exit_code == 0, retried.output
        assert json.loads(retried.stdout)["sent"] == 1
        assert len(smtp_server.wait_for(1)) == 1
        again = run(container, "notifications", "retry", str(row["id"]))
        assert again.exit_code == 1 and "is sent" in again.output
    finally:
        container.close()


def test_the_api_lists_the_outbox_behind_the_token(held: Container) -> None:
    enqueue(held, reminder())
    with TestClient(create_app(held)) as api:
        assert api.get("/notifications").status_code == 401
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        body = api.get("/notifications", params={"tenant_id": "acme", "status": "held"},
                       headers=auth).json()
        assert body["count"] == 1 and body["delivery"] == "held"
        [row] = body["data"]
        assert row["kind"] == "dunning_reminder" and row["recipient"] == "ap@acme.test"
        assert "body_text" in row and row["body_text"] is None  # bodies: one at a time
        one = api.get(f"/notifications/{row['id']}", headers=auth).json()
        assert "$49.00" in one["body_text"] and one["body_html"].startswith("<!DOCTYPE")
        assert api.get("/notifications", params={"tenant_id": "nobody"},
                       headers=auth).json()["count"] == 0
        assert api.get("/notifications", params={"status": "lost"},
                       headers=auth).status_code == 422  # the validation answer
        assert api.get("/notifications/999", headers=auth).status_code == 404
