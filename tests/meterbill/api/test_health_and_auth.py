"""`/health`, the OpenAPI docs, and the bearer token every other route needs."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from meterbill.adapters.db.migrate import Migrations, upgrade
from meterbill.bootstrap import Container, build
from meterbill.entrypoints.api import create_app
from meterbill.entrypoints.api.auth import MissingApiToken
from stripe_sandbox import Sandbox, SandboxHTTPClient

from ..conftest import make_settings
from .support import error_of, stripe_objects, tenant_ids

PROTECTED = [
    ("POST", "/customers", {"tenant_id": "t_auth", "email": "a@b.co", "name": "A"}),
    ("POST", "/subscriptions", {"customer_id": "cus_x", "plan_type": "pro",
                                "tenant_id": "t_auth"}),
    ("DELETE", "/subscriptions/sub_123", None),
    ("POST", "/subscriptions/sub_123/resume", None),
    ("POST", "/subscriptions/sub_123/plan", {"plan_type": "pro"}),
    ("GET", "/tenants/t_auth", None),
    ("GET", "/tenants", None),
    ("GET", "/tenants/t_auth/usage", None),
    ("GET", "/tenants/t_auth/entitlement", None),
    ("GET", "/tenants/t_auth/timeline", None),
    ("POST", "/tenants/t_auth/billing-link", None),
    ("POST", "/usage/events", {"events": []}),
    ("POST", "/usage/report", {"tenant_id": "t_auth", "subscription_id": "sub_1",
                               "query_count": 1}),
    ("POST", "/dunning/process", {"tenant_id": "t_auth", "failure_count": 1,
                                  "invoice_amount": 99.00}),
    ("GET", "/notifications", None),
    ("GET", "/notifications/1", None),
    ("POST", "/admin/usage/sync", {}),
    ("POST", "/admin/usage/reconcile", {}),
    ("POST", "/admin/usage/flush", {"customer_id": "cus_x",
                                    "period_end": "2026-05-01T00:00:00Z"}),
    ("GET", "/admin/jobs", None),
    ("POST", "/admin/jobs/usage-sync/run", None),
    ("GET", "/status", None),
    ("GET", "/admin/drifts", None),
    ("GET", "/invoices/review", None),
    ("GET", "/invoices/review/figures", None),
    ("GET", "/invoices/review/in_123", None),
    ("POST", "/invoices/review/in_123/approve", {"by": "ops", "reason": "ok"}),
    ("POST", "/invoices/review/in_123/correct", {"by": "ops", "reason": "ok"}),
    ("POST", "/invoices/review/in_123/void", {"by": "ops", "reason": "ok"}),
]


def test_health_in_sandbox_mode_needs_no_token(api: TestClient) -> None:
    response = api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["stripe_configured"] is True
    assert body["mode"] == "sandbox"


def test_health_reports_the_mode_of_a_test_key(sandbox: Sandbox, settings: Any) -> None:
    keyed = make_settings(settings.database_url, stripe_secret_key="sk_test_" + "k" * 24)
    container = build(keyed, stripe_http_client=SandboxHTTPClient(sandbox))
    container.upgrade_db()  # outside sandbox mode migrating is a deploy step
    try:
        body = TestClient(create_app(container)).get("/health").json()
    finally:
        container.close()
    assert (body["status"], body["mode"], body["stripe_configured"]) == ("ok", "test", True)


def test_health_is_degraded_with_503_when_the_database_is_unreachable(sandbox: Sandbox) -> None:
    secret_url = "postgresql+psycopg://meterbill:s3cret-pw@127.0.0.1:1/meterbill"
    container = build(make_settings(secret_url), stripe_http_client=SandboxHTTPClient(sandbox))
    try:
        response = TestClient(create_app(container)).get("/health")
    finally:
        container.close()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["mode"] == "sandbox"
    assert body["reason"].startswith("database unreachable")
    assert "s3cret-pw" not in response.text


def test_openapi_docs_list_the_routes_of_the_issue(api: TestClient) -> None:
    assert api.get("/docs").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    assert {path: sorted(ops) for path, ops in paths.items()} == {
        "/health": ["get"],
        "/customers": ["post"],
        "/subscriptions": ["get", "post"],
        "/subscriptions/{subscription_id}": ["delete"],
        "/subscriptions/{subscription_id}/resume": ["post"],
        "/subscriptions/{subscription_id}/plan": ["delete", "post"],
        "/tenants": ["get"],
        "/tenants/{tenant_id}": ["get"],
        "/tenants/{tenant_id}/usage": ["get"],
        "/tenants/{tenant_id}/entitlement": ["get"],
        "/tenants/{tenant_id}/timeline": ["get"],
        "/tenants/{tenant_id}/billing-link": ["post"],
        "/usage/events": ["post"],
        "/usage/report": ["post"],
        "/dunning/process": ["post"],
        "/notifications": ["get"],
        "/notifications/{notification_id}": ["get"],
        # For the CLI beside a running server (it holds the usage store) and the console.
        "/admin/usage/sync": ["post"],
        "/admin/usage/reconcile": ["post"],
        "/admin/usage/flush": ["post"],
        "/admin/jobs": ["get"],
        "/admin/jobs/{name}/run": ["post"],
        # Invoice verification's review queue (docs/invoice-verification.md).
        "/invoices/review": ["get"],
        "/invoices/review/figures": ["get"],
        "/invoices/review/{invoice_id}": ["get"],
        "/invoices/review/{invoice_id}/approve": ["post"],
        "/invoices/review/{invoice_id}/correct": ["post"],
        "/invoices/review/{invoice_id}/void": ["post"],
        "/admin/sandbox/advance": ["post"],
        "/admin/sandbox/demo": ["post"],
        # Public: reached from links in emails, authenticated by a signature instead.
        "/billing/portal/{tenant_id}": ["get"],
        "/billing/portal/return": ["get"],
        # Operations: probes and scrapers are public; SLOs and drifts need the token.
        "/metrics": ["get"],
        "/ready": ["get"],
        "/status": ["get"],
        "/admin/drifts": ["get"],
        "/billing/{tenant_id}": ["get"],
        "/billing/{tenant_id}/statement.csv": ["get"],
        "/billing/{tenant_id}/statement.pdf": ["get"],
    }


def test_every_route_but_health_needs_the_token(api: TestClient) -> None:
    for method, path, body in PROTECTED:
        response = api.request(method, path, json=body)
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        error = error_of(response)
        assert error["code"] == "unauthorized"
        assert "Authorization: Bearer" in error["message"]


def test_a_wrong_token_is_refused_and_nothing_is_written(
        api: TestClient, container: Container, sandbox: Sandbox) -> None:
    for header in ["Bearer wrong-token", "Basic dXNlcjpwYXNz", "Bearer ", "bearer x"]:
        response = api.post("/customers", headers={"Authorization": header},
                            json={"tenant_id": "t_auth", "email": "a@b.co"})
        assert response.status_code == 401, header
        assert error_of(response)["code"] == "unauthorized"
    assert tenant_ids(container) == []
    assert stripe_objects(sandbox, "customer") == []


def test_without_a_configured_token_the_kept_development_token_is_required(
        sandbox: Sandbox, settings: Any, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    # The secrets file sits beside a SQLite database: use one, whatever the test's database.
    unset = make_settings(f"sqlite:///{tmp_path / 'var' / 'meterbill.db'}",
                          meterbill_api_token=None)
    tokens = []
    for _ in range(2):  # a server, then the same server restarted
        container = build(unset, stripe_http_client=SandboxHTTPClient(sandbox))
        container.upgrade_db()
        try:
            with caplog.at_level(logging.WARNING, logger="meterbill.api"):
                app = create_app(container)
            client = TestClient(app)
            tokens.append(app.state.api_token)
            assert client.get("/tenants").status_code == 401
            assert client.get("/tenants", headers={
                "Authorization": f"Bearer {app.state.api_token}"}).json() == {
                "data": [], "count": 0}
        finally:
            container.close()
    assert tokens[0] == tokens[1] and len(tokens[0]) >= 32
    kept = tmp_path / "var" / "meterbill.secrets.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert json.loads(kept.read_text())["api_token"] == tokens[0]
    # The log says where the token is and how to print it, not the token itself.
    assert "meterbill api-token" in caplog.text and str(kept) in caplog.text
    assert tokens[0] not in caplog.text
    assert "SANDBOX MODE" in caplog.text


def test_production_refuses_to_start_without_a_token(sandbox: Sandbox, settings: Any) -> None:
    prod = make_settings(settings.database_url, meterbill_api_token=None,
                         environment="production")
    container = build(prod, stripe_http_client=SandboxHTTPClient(sandbox))
    try:
        with pytest.raises(MissingApiToken, match="METERBILL_API_TOKEN"):
            create_app(container)
    finally:
        container.close()


# --- the schema revision ---------------------------------------------------------------------


def _keyed_app(sandbox: Sandbox, database_url: str) -> tuple[Container, TestClient]:
    keyed = make_settings(database_url, stripe_secret_key="sk_test_" + "k" * 24)
    container = build(keyed, stripe_http_client=SandboxHTTPClient(sandbox))
    return container, TestClient(create_app(container))


def test_health_is_degraded_while_the_schema_is_behind(sandbox: Sandbox, settings: Any) -> None:
    container, client = _keyed_app(sandbox, settings.database_url)
    try:
        never = client.get("/health")
        upgrade(container.db.engine, "0005")
        behind = client.get("/health")
        container.upgrade_db()
        current = client.get("/health")
    finally:
        container.close()
    head = current.json()["schema"]["head"]
    assert never.status_code == 503
    body = never.json()
    assert (body["status"], body["database"]) == ("degraded", "schema_behind")
    assert body["schema"] == {"current": None, "head": head, "state": "behind"}
    assert "never migrated" in body["reason"] and "meterbill db upgrade" in body["reason"]
    assert behind.status_code == 503
    assert behind.json()["schema"] == {"current": "0005", "head": head, "state": "behind"}
    assert f"revision 0005, behind this meterbill's {head}" in behind.json()["reason"]
    assert current.status_code == 200
    assert current.json() == {"status": "ok", "stripe_configured": True, "mode": "test",
                              "database": "ok",
                              "schema": {"current": head, "head": head, "state": "current"}}


def test_a_revision_newer_than_the_code_is_reported_but_not_degraded(
        api: TestClient, container: Container) -> None:
    with container.db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    response = api.get("/health")
    assert response.status_code == 200  # a rolling deploy: newer code migrated first
    assert response.json()["schema"]["current"] == "9999"
    assert response.json()["schema"]["state"] == "unknown"


def test_health_reads_the_head_once_and_the_revision_in_one_query(
        api: TestClient, container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    from alembic.script import ScriptDirectory

    container.migrations = Migrations()  # a head not read yet
    reads: list[object] = []
    original = ScriptDirectory.from_config
    monkeypatch.setattr(ScriptDirectory, "from_config",
                        lambda config: reads.append(config) or original(config))
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(container.db.engine, "before_cursor_execute", count)
    try:
        for _ in range(3):
            assert api.get("/health").json()["schema"]["state"] == "current"
    finally:
        event.remove(container.db.engine, "before_cursor_execute", count)
    assert len(reads) == 1
    assert len(statements) == 3 and all("alembic_version" in s for s in statements)
