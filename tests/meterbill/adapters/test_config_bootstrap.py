"""Settings (modes, redaction, .env.example) and what bootstrap.build wires."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meterbill.bootstrap import build
from meterbill.config import Settings

from ..conftest import make_settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("key, mode", [
    (None, "sandbox"), ("sk_test_123", "test"), ("rk_test_123", "test"),
    ("sk_live_123", "live"), ("rk_live_123", "live"),
])
def test_mode(key: str | None, mode: str) -> None:
    assert make_settings("sqlite://", stripe_secret_key=key).mode == mode


def test_describe_redacts_secrets_and_passwords() -> None:
    settings = make_settings(
        "postgresql+psycopg://meter:hunter2@db.internal/meterbill",
        stripe_secret_key="sk_live_abcdefghijklmnopqrstuvwxyz1234",
        stripe_webhook_secret="whsec_supersecretvalue9876",
        meterbill_api_token="token-that-must-not-leak",
    )
    rows = dict(settings.describe())
    text = repr(rows)
    for secret in ("abcdefghijklmnop", "supersecret", "token-that-must-not-leak", "hunter2"):
        assert secret not in text
    assert rows["STRIPE_SECRET_KEY"] == "sk_live_********1234"
    assert rows["STRIPE_WEBHOOK_SECRET"].startswith("whsec_")
    assert rows["DATABASE_URL"] == "postgresql+psycopg://meter:***@db.internal/meterbill"
    assert rows["STRIPE_PUBLISHABLE_KEY"] == "(not set)"
    assert set(rows) == {name.upper() for name in Settings.model_fields}


def test_env_example_lists_every_setting_with_a_comment() -> None:
    text = (ROOT / ".env.example").read_text()
    names = re.findall(r"^([A-Z_]+)=", text, flags=re.M)
    assert sorted(names) == sorted(name.upper() for name in Settings.model_fields)
    lines = text.splitlines()
    for name in names:
        index = next(i for i, line in enumerate(lines) if line.startswith(name + "="))
        assert lines[index - 1].startswith("#") or lines[index - 1].startswith(
            tuple(n + "=" for n in names)), f"{name} has no comment"


def test_env_example_loads_as_sandbox_defaults() -> None:
    settings = Settings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
    assert settings.mode == "sandbox"
    assert settings.plans_file is None and settings.stripe_api_base is None
    assert settings.database_url == "sqlite:///var/meterbill.db"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_fromenv")
    monkeypatch.setenv("REQUIRE_PAYMENT_METHOD", "false")
    monkeypatch.setenv("UPGRADE_PRORATION", "create_prorations")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.mode == "test"
    assert settings.require_payment_method is False
    assert settings.upgrade_proration == "create_prorations"
    monkeypatch.setenv("DEFAULT_TRIAL_DAYS", "-1")
    with pytest.raises(ValueError):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_sandbox_mode_builds_an_in_process_sandbox(tmp_path: Path) -> None:
    container = build(make_settings(f"sqlite:///{tmp_path / 'm.db'}"))
    try:
        assert container.mode == "sandbox" and container.sandbox is not None
        container.prepare_sandbox()
        assert container.catalog.keys() == ("starter", "pro", "enterprise")
        assert {c.action for c in container.catalog_sync.sync()} == {"unchanged"}
        container.stripe_health()
    finally:
        container.close()


def test_api_base_points_the_client_at_a_remote_sandbox(tmp_path: Path) -> None:
    container = build(make_settings(f"sqlite:///{tmp_path / 'm.db'}",
                                    stripe_api_base="http://127.0.0.1:12111/"))
    try:
        assert container.sandbox is None  # nothing in-process: the sandbox runs elsewhere
        client = container.stripe_client
        assert client is not None
        options = client._requestor._options  # noqa: SLF001 - no public accessor
        assert options.base_addresses["api"] == "http://127.0.0.1:12111"
        assert options.base_addresses["meter_events"] == "http://127.0.0.1:12111"
        assert options.api_key == "sk_test_sandbox"
        assert options.max_network_retries == 0
    finally:
        container.close()
