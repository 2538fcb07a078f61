"""Links and tokens that outlive the process that made them: the development API token
(`meterbill api-token`), links in emails that follow `serve --port`, portal links signed with a
kept key, and invoice links of the sandbox that survive a restart."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from meterbill.bootstrap import build
from meterbill.config import Settings
from meterbill.entrypoints.api import create_app
from meterbill.entrypoints.cli import CliContext
from meterbill.entrypoints.cli import server as server_module
from meterbill.entrypoints.cli.server_record import ServerRecord, record_file
from stripe_sandbox import Sandbox, SandboxHTTPClient

from ..conftest import make_settings
from .conftest import run_cli


@pytest.fixture
def dev_settings(tmp_path: Path) -> Settings:
    """A fresh clone's development set-up: no API token, no link secret, sandbox mode."""
    return make_settings(f"sqlite:///{tmp_path / 'var' / 'meterbill.db'}",
                         meterbill_api_token=None)


def _context(settings: Settings, sandbox: Sandbox | None = None) -> CliContext:
    if sandbox is None:
        return CliContext(settings_factory=lambda: settings)
    return CliContext(settings_factory=lambda: settings, lasting_sandbox=False,
                      container_factory=lambda s: build(
                          s, stripe_http_client=SandboxHTTPClient(sandbox)))


def _portal_link(settings: Settings, sandbox: Sandbox) -> str:
    """`meterbill dunning process` records a notice; its email links to the billing portal."""
    container = build(settings, stripe_http_client=SandboxHTTPClient(sandbox))
    try:
        container.upgrade_db()
        container.customers.ensure_customer("t1", "t1@acme.test", None)
    finally:
        container.close()
    result = run_cli(_context(settings, sandbox), "dunning", "process", "--tenant", "t1",
                     "--failures", "1", "--amount", "9900")
    assert result.exit_code == 0, result.stderr
    shown = run_cli(_context(settings, sandbox), "notifications", "show", "1")
    assert shown.exit_code == 0, shown.stderr
    return next(word for word in shown.stdout.split() if "/billing/portal/t1?" in word)


# --- the development API token ---------------------------------------------------------


def test_api_token_prints_the_token_the_server_accepts(dev_settings: Settings,
                                                       sandbox: Sandbox) -> None:
    printed = run_cli(_context(dev_settings), "api-token")
    assert printed.exit_code == 0, printed.stderr
    token = printed.stdout.strip()
    assert len(token) >= 32 and "\n" not in token
    again = json.loads(run_cli(_context(dev_settings), "api-token", "--json").stdout)
    assert again == {"token": token, "source": str(record_file(dev_settings).with_name(
        "meterbill.secrets.json"))}
    container = build(dev_settings, stripe_http_client=SandboxHTTPClient(sandbox))
    try:
        container.upgrade_db()
        api = TestClient(create_app(container))
        assert api.get("/tenants", headers={"Authorization": f"Bearer {token}"}
                       ).status_code == 200
    finally:
        container.close()


def test_api_token_prints_a_configured_token_and_refuses_in_production(
        dev_settings: Settings) -> None:
    configured = dev_settings.model_copy(
        update={"meterbill_api_token": SecretStr("set-by-operator-123")})
    assert run_cli(_context(configured), "api-token").stdout == "set-by-operator-123\n"
    production = configured.model_copy(update={"environment": "production"})
    refused = run_cli(_context(production), "api-token")
    assert refused.exit_code == 2
    assert "METERBILL_API_TOKEN setting" in refused.stderr
    assert "set-by-operator-123" not in refused.stdout + refused.stderr


# --- links in emails --------------------------------------------------------------------


def test_a_portal_link_made_by_a_command_opens_in_the_server(dev_settings: Settings,
                                                            sandbox: Sandbox) -> None:
    link = _portal_link(dev_settings, sandbox)
    container = build(dev_settings, stripe_http_client=SandboxHTTPClient(sandbox))
    try:
        api = TestClient(create_app(container), follow_redirects=False)
        response = api.get(link.split("127.0.0.1:8000", 1)[1])
    finally:
        container.close()
    assert response.status_code == 303, response.text  # not 403 "Link not valid"
    kept = json.loads(record_file(dev_settings).with_name("meterbill.secrets.json").read_text())
    assert "link_signing_key" in kept  # the command made it; the server used it


def test_links_made_beside_a_running_server_point_at_it(dev_settings: Settings,
                                                        sandbox: Sandbox) -> None:
    record = ServerRecord(record_file(dev_settings))
    assert record.claim()
    record.publish({"pid": os.getpid(), "api": "http://127.0.0.1:8123"})
    try:
        link = _portal_link(dev_settings, sandbox)
    finally:
        record.release()
    assert link.startswith("http://127.0.0.1:8123/billing/portal/t1?")


def test_serve_links_to_its_own_port_unless_public_base_url_is_set(
        dev_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def fake_run(app: Any, **kwargs: Any) -> None:
        container = app.state.container
        seen.append(container.portal_links.url_for("t1"))
        seen.append(container.notifier.public_base_url)

    monkeypatch.setattr(server_module.uvicorn, "run", fake_run)
    result = run_cli(_context(dev_settings), "serve", "--port", "8123", "--json")
    assert result.exit_code == 0, result.stderr
    assert seen[0].startswith("http://127.0.0.1:8123/billing/portal/t1?")
    assert seen[1] == "http://127.0.0.1:8123"
    record = json.loads(record_file(dev_settings).read_text())
    assert record["api"] == "http://127.0.0.1:8123" and record["pid"] == os.getpid()

    chosen = dev_settings.model_copy(update={"public_base_url": "https://billing.acme.test/"})
    assert run_cli(_context(chosen), "serve", "--port", "8124").exit_code == 0
    assert seen[2].startswith("https://billing.acme.test/billing/portal/t1?")


# --- the sandbox's invoice links across restarts ----------------------------------------


def _finalized_invoice(container: Any) -> Any:
    client = container.stripe_client
    customer = client.v1.customers.create(params={"email": "links@acme.test"})
    client.v1.invoice_items.create(params={"customer": customer.id, "amount": 500,
                                           "currency": "usd"})
    draft = client.v1.invoices.create(params={"customer": customer.id,
                                              "pending_invoice_items_behavior": "include"})
    return client.v1.invoices.finalize_invoice(draft.id)


def test_the_sandbox_keeps_its_port_and_its_invoice_links_across_restarts(
        dev_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[dict[str, Any]] = []

    def fake_run(app: Any, **kwargs: Any) -> None:
        container = app.state.container
        seen: dict[str, Any] = {"sandbox": container.sandbox.config.public_url}
        if not runs:
            seen["invoice"] = _finalized_invoice(container)
        else:
            invoice = container.stripe_client.v1.invoices.retrieve(runs[0]["invoice"].id)
            seen["url"] = invoice.hosted_invoice_url
            seen["page"] = httpx.get(invoice.hosted_invoice_url).status_code
        runs.append(seen)

    monkeypatch.setattr(server_module.uvicorn, "run", fake_run)
    for _ in range(2):
        assert run_cli(_context(dev_settings), "serve", "--port", "8123").exit_code == 0
    first, second = runs
    assert second["sandbox"] == first["sandbox"]  # the same port again
    assert second["url"] == first["invoice"].hosted_invoice_url and second["page"] == 200

    # Its port is taken now: the sandbox serves on another and its links move along.
    port = int(first["sandbox"].rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        assert run_cli(_context(dev_settings), "serve", "--port", "8123").exit_code == 0
    third = runs[2]
    assert third["sandbox"] != first["sandbox"]
    assert third["url"].startswith(third["sandbox"] + "/invoice/") and third["page"] == 200
