"""`meterbill serve` with a Stripe key and a schema that is behind: it refuses to start (exit 2,
naming `meterbill db upgrade`) or, with AUTO_MIGRATE=true, migrates first.

The key is a test key and Stripe is a sandbox served on a local port (STRIPE_API_BASE), as a
deployment pointed at a sandbox would run; uvicorn is replaced by a function that calls the
app the way the first client would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect

from meterbill.adapters.db.migrate import current_revision, upgrade
from meterbill.config import Settings
from meterbill.entrypoints.cli import CliContext
from meterbill.entrypoints.cli import server as server_module
from stripe_sandbox import Sandbox
from stripe_sandbox.server import SandboxServer

from ..conftest import API_TOKEN, make_settings
from .conftest import run_cli

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SEED_CUSTOMER = {"tenant_id": "test_tenant_001", "email": "admin@testcompany.com",
                 "name": "Test Company"}


@pytest.fixture
def stripe_url() -> Iterator[str]:
    server = SandboxServer(Sandbox(), port=0).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def keyed(tmp_path: Path, stripe_url: str) -> Settings:
    """Test mode (an sk_test_ key) on a database file nobody has migrated."""
    return make_settings(f"sqlite:///{tmp_path / 'meterbill.db'}",
                         stripe_secret_key="sk_test_" + "k" * 24, stripe_api_base=stripe_url)


def _serve(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[Any, dict]:
    """Run `meterbill serve`; `seen` holds what a first client got, if it got that far."""
    seen: dict[str, Any] = {}

    def first_client(app: Any, **_: Any) -> None:
        client = TestClient(app)
        seen["health"] = client.get("/health")
        seen["customer"] = client.post("/customers", headers=AUTH, json=SEED_CUSTOMER)

    monkeypatch.setattr(server_module.uvicorn, "run", first_client)
    result = run_cli(CliContext(settings_factory=lambda: settings), "serve", *args)
    return result, seen


def _tables(settings: Settings) -> set[str]:
    engine = create_engine(settings.database_url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_database_never_migrated_is_refused_with_the_command_to_run(
        keyed: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    result, seen = _serve(keyed, monkeypatch)
    assert result.exit_code == 2, result.stderr
    assert seen == {}  # nothing was served
    assert "meterbill db upgrade" in result.stderr and "AUTO_MIGRATE=true" in result.stderr
    assert "never migrated" in result.stderr
    assert "tenants" not in _tables(keyed)  # and nothing migrated behind the operator's back

    as_json, _ = _serve(keyed, monkeypatch, "--json")
    assert as_json.exit_code == 2
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == "schema_behind" and "meterbill db upgrade" in error["message"]


def test_a_schema_behind_head_is_refused_naming_both_revisions(
        keyed: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = create_engine(keyed.database_url)
    try:
        upgrade(engine, "0005")
    finally:
        engine.dispose()
    result, seen = _serve(keyed, monkeypatch)
    assert result.exit_code == 2 and seen == {}
    assert "revision 0005, behind" in result.stderr and "meterbill db upgrade" in result.stderr


def test_auto_migrate_migrates_then_serves_the_first_customer(
        keyed: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = keyed.model_copy(update={"auto_migrate": True})
    result, seen = _serve(settings, monkeypatch)
    assert result.exit_code == 0, result.stderr
    health = seen["health"]
    assert health.status_code == 200, health.text
    body = health.json()
    assert (body["status"], body["mode"], body["database"]) == ("ok", "test", "ok")
    assert body["schema"]["state"] == "current"
    assert body["schema"]["current"] == body["schema"]["head"]
    assert seen["customer"].status_code == 200, seen["customer"].text
    assert seen["customer"].json()["customer_id"].startswith("cus_")


def test_a_migrated_database_is_served_without_migrating(
        keyed: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli(CliContext(settings_factory=lambda: keyed), "db", "upgrade").exit_code == 0
    migrated = []
    monkeypatch.setattr(server_module.Container, "upgrade_db",
                        lambda self: migrated.append(self))
    result, seen = _serve(keyed, monkeypatch)
    assert result.exit_code == 0, result.stderr
    assert migrated == []
    assert seen["health"].json()["status"] == "ok"
    assert seen["customer"].status_code == 200, seen["customer"].text


def test_sandbox_mode_still_migrates_by_itself(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'var' / 'meterbill.db'}")
    result, seen = _serve(settings, monkeypatch)
    assert result.exit_code == 0, result.stderr
    assert seen["health"].json()["status"] == "ok"
    assert seen["customer"].status_code == 200, seen["customer"].text
    engine = create_engine(settings.database_url)
    try:
        assert current_revision(engine) == seen["health"].json()["schema"]["head"]
    finally:
        engine.dispose()


def test_check_config_names_the_upgrade_for_a_schema_behind(keyed: Settings) -> None:
    result = run_cli(CliContext(settings_factory=lambda: keyed), "check-config", "--json")
    assert result.exit_code == 1
    errors = json.loads(result.stdout)["errors"]
    assert [e["name"] for e in errors] == ["database"]
    assert "never migrated" in errors[0]["message"]
    assert "meterbill db upgrade" in errors[0]["fix"]
