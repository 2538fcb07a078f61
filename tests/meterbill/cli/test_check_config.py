"""`meterbill check-config`: settings redacted, database and Stripe checked, fix-it lines."""

from __future__ import annotations

import json
from typing import Any

import stripe

from meterbill.bootstrap import Container, build
from meterbill.config import Settings
from meterbill.entrypoints.cli import CliContext
from stripe_sandbox import Sandbox, SandboxHTTPClient

from ..conftest import make_settings
from .conftest import run_cli

LIVE_KEY = "sk_live_" + "L1ve" * 6
UNREACHABLE_DB = "postgresql+psycopg://meterbill:s3cret-pw@127.0.0.1:1/meterbill"


class _StripeAcceptingAnyKey(SandboxHTTPClient):
    """The sandbox answers only sk_test_ keys; this stands in for Stripe accepting a live one."""

    def request(self, method: str, url: str, headers: Any, post_data: Any = None, *,
                _usage: Any = None) -> Any:
        headers = dict(headers or {}, Authorization="Bearer sk_test_sandbox")
        return super().request(method, url, headers, post_data, _usage=_usage)


def _context(settings: Settings, http_client: stripe.HTTPClient) -> CliContext:
    return CliContext(settings_factory=lambda: settings,
                      container_factory=lambda s: build(s, stripe_http_client=http_client))


def test_a_good_configuration_passes_with_secrets_redacted(
        container: Container, sandbox: Sandbox) -> None:
    result = run_cli(_context(container.settings, SandboxHTTPClient(sandbox)), "check-config")
    assert result.exit_code == 0, result.stdout
    assert "configuration OK" in result.stdout
    assert "METERBILL_API_TOKEN" in result.stdout
    assert "test-token-0123456789" not in result.stdout

    report = json.loads(run_cli(_context(container.settings, SandboxHTTPClient(sandbox)),
                                "check-config", "--json").stdout)
    assert report["ok"] is True and report["errors"] == []
    assert {c["name"]: c["ok"] for c in report["checks"]} == {"database": True, "stripe": True}
    assert report["settings"]["STRIPE_SECRET_KEY"] == "(not set)"


def test_an_unreachable_database_exits_1_with_a_fix_line(sandbox: Sandbox) -> None:
    settings = make_settings(UNREACHABLE_DB)
    result = run_cli(_context(settings, SandboxHTTPClient(sandbox)), "check-config")
    assert result.exit_code == 1
    assert "cannot connect" in result.stdout
    assert "Fix: start the database or correct DATABASE_URL" in result.stdout
    assert "s3cret-pw" not in result.stdout

    report = json.loads(run_cli(_context(settings, SandboxHTTPClient(sandbox)),
                                "check-config", "--json").stdout)
    assert report["ok"] is False
    assert [e["name"] for e in report["errors"]] == ["database"]
    assert report["errors"][0]["fix"].startswith("Fix:")


def test_a_database_url_that_is_not_a_url_exits_1(sandbox: Sandbox) -> None:
    settings = make_settings("not a database url")
    result = run_cli(_context(settings, SandboxHTTPClient(sandbox)), "check-config", "--json")
    assert result.exit_code == 1
    errors = json.loads(result.stdout)["errors"]
    assert errors[0]["name"] == "database" and "DATABASE_URL" in errors[0]["fix"]


def test_a_live_key_outside_production_is_a_warning(container: Container,
                                                     sandbox: Sandbox) -> None:
    settings = make_settings(container.settings.database_url, stripe_secret_key=LIVE_KEY)
    result = run_cli(_context(settings, _StripeAcceptingAnyKey(sandbox)), "check-config")
    assert result.exit_code == 0, result.stdout  # a warning, not an error
    assert "warning:" in result.stdout
    assert "live key (sk_live_)" in result.stdout
    assert LIVE_KEY not in result.stdout


def test_a_test_key_in_production_is_a_warning(container: Container, sandbox: Sandbox) -> None:
    settings = make_settings(container.settings.database_url, environment="production",
                             stripe_secret_key="sk_test_" + "t" * 24,
                             stripe_webhook_secret="whsec_" + "w" * 24)
    report = json.loads(run_cli(_context(settings, SandboxHTTPClient(sandbox)),
                                "check-config", "--json").stdout)
    assert any("test key" in warning for warning in report["warnings"])
    assert report["ok"] is True


def test_production_without_an_api_token_is_an_error(container: Container,
                                                     sandbox: Sandbox) -> None:
    settings = make_settings(container.settings.database_url, environment="production",
                             meterbill_api_token=None)
    result = run_cli(_context(settings, SandboxHTTPClient(sandbox)), "check-config")
    assert result.exit_code == 1
    assert "Fix: set METERBILL_API_TOKEN" in result.stdout


def test_stripe_unreachable_exits_1_with_a_fix_line(
        container: Container, stripe_down: tuple[Container, Any]) -> None:
    _, down = stripe_down
    settings = make_settings(container.settings.database_url,
                             stripe_secret_key="sk_test_" + "t" * 24)
    result = run_cli(_context(settings, down), "check-config", "--json")
    assert result.exit_code == 1
    errors = json.loads(result.stdout)["errors"]
    assert [e["name"] for e in errors] == ["stripe"]
    assert errors[0]["fix"].startswith("Fix:")
    assert down.calls == 1  # one API call, no retries in the test settings
