"""The everyday commands on the test's container: JSON for scripts, tables for people."""

from __future__ import annotations

import json
from typing import Any

from meterbill.bootstrap import Container
from stripe_sandbox import Sandbox

from .conftest import Run


def _json(result: Any) -> Any:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_tenant_and_subscription_lifecycle_as_json(cli: Run, sandbox: Sandbox) -> None:
    tenant = _json(cli("tenants", "create", "test_tenant_001", "--email", "ops@acme.test",
                       "--name", "Acme", "--json"))
    assert tenant["stripe_customer_id"].startswith("cus_")
    assert sandbox.store.get("customer", tenant["stripe_customer_id"]) is not None

    sub = _json(cli("subscriptions", "create", "--tenant", "test_tenant_001", "--plan", "pro",
                    "--payment-method", "pm_card_visa", "--trial-days", "7", "--json"))
    assert (sub["plan_type"], sub["status"], sub["customer_id"]) == (
        "pro", "trialing", tenant["stripe_customer_id"])

    listed = _json(cli("tenants", "list", "--json"))
    assert listed["count"] == 1
    assert listed["data"][0]["stripe_subscription_id"] == sub["id"]
    summary = _json(cli("tenants", "show", "test_tenant_001", "--json"))
    assert (summary["plan"], summary["payment_method_on_file"]) == ("pro", True)

    change = _json(cli("subscriptions", "change-plan", sub["id"], "--plan", "enterprise",
                       "--json"))
    assert (change["effective"], change["to_plan"]) == ("now", "enterprise")
    canceled = _json(cli("subscriptions", "cancel", sub["id"], "--json"))
    assert canceled["cancel_at_period_end"] is True
    resumed = _json(cli("subscriptions", "resume", sub["id"], "--json"))
    assert resumed["cancel_at_period_end"] is False
    ended = _json(cli("subscriptions", "cancel", sub["id"], "--now", "--json"))
    assert ended["status"] == "canceled"


def test_subscriptions_create_with_email_makes_the_customer_first(cli: Run) -> None:
    sub = _json(cli("subscriptions", "create", "--tenant", "seed_tenant", "--plan", "starter",
                    "--email", "seed@acme.test", "--payment-method", "pm_card_visa", "--json"))
    assert sub["tenant_id"] == "seed_tenant" and sub["plan_type"] == "starter"


def test_tables_for_people(cli: Run) -> None:
    created = cli("tenants", "create", "t_table", "--email", "t@acme.test")
    assert created.exit_code == 0, created.stderr
    assert "stripe_customer_id" in created.stdout and "cus_" in created.stdout
    listed = cli("tenants", "list")
    assert listed.exit_code == 0
    assert "Tenants (1)" in listed.stdout and "t_table" in listed.stdout


def test_unknown_plan_fails_with_the_message_and_creates_nothing(
        cli: Run, sandbox: Sandbox, container: Container) -> None:
    assert cli("tenants", "create", "t1", "--email", "t1@acme.test").exit_code == 0
    human = cli("subscriptions", "create", "--tenant", "t1", "--plan", "xyz",
                "--payment-method", "pm_card_visa")
    assert human.exit_code == 1
    assert "Unknown plan type: xyz. Valid plans: starter, pro, enterprise" in human.stderr
    scripted = cli("subscriptions", "create", "--tenant", "t1", "--plan", "xyz", "--json")
    assert scripted.exit_code == 1
    error = json.loads(scripted.stdout)["error"]
    assert (error["code"], error["field"]) == ("unknown_plan", "plan_type")
    assert list(sandbox.store.all("subscription")) == []
    assert container.tenants.list()[0].stripe_subscription_id is None


def test_a_tenant_without_customer_needs_email(cli: Run) -> None:
    result = cli("subscriptions", "create", "--tenant", "nobody", "--plan", "pro", "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "tenant_not_found"
    assert "--email" in error["message"]


def test_unknown_tenant_show_is_an_error(cli: Run) -> None:
    result = cli("tenants", "show", "nobody")
    assert result.exit_code == 1
    assert "nobody" in result.stderr


def test_catalog_sync_dry_run_on_a_synced_catalog_changes_nothing(cli: Run) -> None:
    report = _json(cli("catalog", "sync", "--dry-run", "--json"))
    assert report["dry_run"] is True
    assert report["changes"] and {c["action"] for c in report["changes"]} == {"unchanged"}
    kinds = sorted({c["kind"] for c in report["changes"]})
    assert kinds == ["meter", "price", "product"]
    human = cli("catalog", "sync", "--dry-run")
    assert human.exit_code == 0
    assert "dry run" in human.stdout and f"{len(report['changes'])} unchanged" in human.stdout


def test_db_upgrade_reports_the_head_revision(cli: Run) -> None:
    first = _json(cli("db", "upgrade", "--json"))
    again = _json(cli("db", "upgrade", "--json"))
    assert first == again
    assert first["revision"]
    assert "password" not in first["database"]


def test_cancel_downgrade_keeps_the_current_plan(cli: Run) -> None:
    _json(cli("tenants", "create", "t_down", "--email", "d@acme.test", "--json"))
    sub = _json(cli("subscriptions", "create", "--tenant", "t_down", "--plan", "pro",
                    "--payment-method", "pm_card_visa", "--trial-days", "7", "--json"))
    change = _json(cli("subscriptions", "change-plan", sub["id"], "--plan", "starter", "--json"))
    assert (change["effective"], change["subscription"]["pending_plan"]) == ("period_end",
                                                                             "starter")
    kept = _json(cli("subscriptions", "cancel-downgrade", sub["id"], "--json"))
    assert (kept["to_plan"], kept["subscription"]["pending_plan"]) == ("pro", None)
