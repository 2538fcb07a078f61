"""Sandbox mode from the command line: a sandbox that lasts between commands, and `serve`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from meterbill.config import Settings
from meterbill.entrypoints.cli import CliContext
from meterbill.entrypoints.cli import server as server_module
from meterbill.entrypoints.cli.sandbox_state import SandboxLock, data_file
from stripe_sandbox import Sandbox
from stripe_sandbox.server import SandboxServer

from ..conftest import make_settings
from .conftest import run_cli


@pytest.fixture
def sandbox_settings(tmp_path: Path) -> Settings:
    """Sandbox mode on a fresh SQLite file: `build` makes an in-process sandbox itself."""
    return make_settings(f"sqlite:///{tmp_path / 'var' / 'meterbill.db'}")


def _run(settings: Settings, *args: str) -> Any:
    """One `meterbill` process: a fresh context, so nothing but the files is shared."""
    result = run_cli(CliContext(settings_factory=lambda: settings), *args, "--json")
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_stripe_objects_outlive_each_command(sandbox_settings: Settings) -> None:
    _run(sandbox_settings, "db", "upgrade")
    synced = _run(sandbox_settings, "catalog", "sync")
    assert {c["action"] for c in synced["changes"]} == {"create"}
    again = _run(sandbox_settings, "catalog", "sync", "--dry-run")
    assert {c["action"] for c in again["changes"]} == {"unchanged"}

    tenant = _run(sandbox_settings, "tenants", "create", "t1", "--email", "t1@acme.test")
    # A later command finds the customer made by the earlier one in the sandbox.
    sub = _run(sandbox_settings, "subscriptions", "create", "--tenant", "t1", "--plan", "pro",
               "--payment-method", "pm_card_visa")
    assert sub["customer_id"] == tenant["stripe_customer_id"]
    summary = _run(sandbox_settings, "tenants", "show", "t1")
    assert summary["subscription_id"] == sub["id"]
    saved = data_file(sandbox_settings)
    assert saved == Path(sandbox_settings.database_url[len("sqlite:///"):]).with_name(
        "meterbill.stripe-sandbox.json")
    assert sub["id"] in saved.read_text()


def test_commands_use_the_sandbox_of_a_running_server(sandbox_settings: Settings) -> None:
    _run(sandbox_settings, "db", "upgrade")
    served = Sandbox()
    server = SandboxServer(served, port=0).start()
    lock = SandboxLock(data_file(sandbox_settings))
    assert lock.try_acquire()
    lock.write_info({"pid": 1, "url": server.url})
    try:
        tenant = _run(sandbox_settings, "tenants", "create", "t1", "--email", "t1@acme.test")
    finally:
        lock.release()
        server.stop()
    assert served.store.get("customer", tenant["stripe_customer_id"]) is not None
    assert not data_file(sandbox_settings).exists()  # the server's sandbox, not a file of ours


def test_serve_prepares_the_sandbox_and_shares_it(sandbox_settings: Settings,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(app: Any, host: str, port: int, log_level: str) -> None:
        from fastapi.testclient import TestClient

        seen["address"] = (host, port)
        seen["paths"] = set(app.openapi()["paths"])
        seen["health"] = TestClient(app).get("/health").json()
        container = app.state.container
        seen["prices"] = len(container.sandbox.store.all("price"))  # catalog synced
        seen["lock"] = SandboxLock(data_file(sandbox_settings)).holder()
        token = container.settings.meterbill_api_token.get_secret_value()
        seen["customers"] = httpx.get(
            f"{seen['lock']['url']}/v1/customers",
            headers={"Authorization": "Bearer sk_test_sandbox"}).status_code
        seen["tenants"] = TestClient(app).get(
            "/tenants", headers={"Authorization": f"Bearer {token}"}).json()

    monkeypatch.setattr(server_module.uvicorn, "run", fake_run)
    result = run_cli(CliContext(settings_factory=lambda: sandbox_settings),
                     "serve", "--host", "127.0.0.1", "--port", "8123", "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    announced = json.loads(result.stdout)
    assert announced["mode"] == "sandbox" and announced["url"] == "http://127.0.0.1:8123"
    assert announced["sandbox_url"] == seen["lock"]["url"]
    assert seen["address"] == ("127.0.0.1", 8123)
    head = seen["health"]["schema"]["head"]
    assert seen["health"] == {"status": "ok", "stripe_configured": True, "mode": "sandbox",
                              "database": "ok",
                              "schema": {"current": head, "head": head, "state": "current"}}
    assert {"/health", "/customers", "/webhooks/stripe"} <= seen["paths"]
    assert seen["prices"] == 6  # base + overage for each of the three plans
    assert seen["customers"] == 200
    assert seen["tenants"] == {"data": [], "count": 0}
    # After the server stops: the lock is free again and the sandbox state is on disk.
    assert SandboxLock(data_file(sandbox_settings)).holder() == {}
    assert "price" in data_file(sandbox_settings).read_text()


def test_serve_refuses_production_without_a_token(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module.uvicorn, "run", lambda *a, **k: pytest.fail("served"))
    settings = make_settings(f"sqlite:///{tmp_path / 'm.db'}", environment="production",
                             meterbill_api_token=None)
    result = run_cli(CliContext(settings_factory=lambda: settings), "serve")
    assert result.exit_code == 2
    assert "METERBILL_API_TOKEN" in result.stderr


def test_a_second_server_on_the_same_database_is_refused(sandbox_settings: Settings,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module.uvicorn, "run", lambda *a, **k: pytest.fail("served"))
    lock = SandboxLock(data_file(sandbox_settings))
    assert lock.try_acquire()
    lock.write_info({"pid": 4242, "url": "http://127.0.0.1:9"})
    try:
        result = run_cli(CliContext(settings_factory=lambda: sandbox_settings), "serve")
    finally:
        lock.release()
    assert result.exit_code == 2
    assert "pid 4242" in result.stderr and "STRIPE_API_BASE=http://127.0.0.1:9" in result.stderr


def test_sandbox_command_announces_its_url(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    served: list[str] = []
    monkeypatch.setattr(SandboxServer, "serve_forever",
                        lambda self, *a, **k: served.append(self.url))
    data = tmp_path / "sandbox.json"
    result = run_cli(CliContext(), "sandbox", "--port", "0", "--data", str(data), "--json")
    assert result.exit_code == 0, result.stderr
    announced = json.loads(result.stdout)
    assert announced["url"] == served[0] and announced["port"] > 0
    assert announced["data"] == str(data)


def test_a_damaged_sandbox_data_file_is_reported_with_a_fix(sandbox_settings: Settings) -> None:
    _run(sandbox_settings, "db", "upgrade")
    data_file(sandbox_settings).write_text("{not json")
    result = run_cli(CliContext(settings_factory=lambda: sandbox_settings),
                     "tenants", "create", "t1", "--email", "t1@acme.test", "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "sandbox_data"
    assert f"Fix: delete {data_file(sandbox_settings)}" in error["message"]
