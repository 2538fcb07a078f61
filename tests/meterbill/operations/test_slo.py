"""SLOs: a breach alerts exactly once when it starts and once when it ends; `GET /status` and
`meterbill status` show value, objective, ok or breach and since when; a bad SLO file is
refused with what to write."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from meterbill.adapters.db.inbox import WebhookEvent
from meterbill.adapters.db.notifications import BillingNotice
from meterbill.bootstrap import Container
from meterbill.domain.errors import InvalidInput
from meterbill.domain.slo import load_slos, parse_slos
from meterbill.entrypoints.api import create_app
from meterbill.entrypoints.cli import CliContext, app

SLOS = """
[inbox_age_minutes]
description = "Oldest unhandled webhook event"
objective = "<= 30"
window = "24h"

[webhook_success]
description = "Webhook events handled"
objective = ">= 0.99"
window = "24h"
"""


@pytest.fixture
def slo_file(tmp_path: Path) -> Path:
    path = tmp_path / "slos.toml"
    path.write_text(SLOS)
    return path


@pytest.fixture
def ops(container: Container, slo_file: Path) -> Iterator[Container]:
    container.settings = container.settings.model_copy(update={"slo_file": slo_file})
    yield container


def _stuck_event(container: Container, minutes: int) -> int:
    at = datetime.now(UTC) - timedelta(minutes=minutes)
    with container.db.session() as session:
        row = WebhookEvent(event_id="evt_stuck", type="invoice.paid", object_id="in_1",
                           created=at, payload="{}", received_at=at, status="received")
        session.add(row)
        session.flush()
        return row.id


def _alerts(container: Container) -> list[str]:
    with container.db.session() as session:
        return list(session.scalars(select(BillingNotice.dedupe_key)
                                    .where(BillingNotice.kind == "admin_alert")
                                    .order_by(BillingNotice.id)))


def _set_status(container: Container, row_id: int, status: str) -> None:
    with container.db.session() as session:
        row = session.get(WebhookEvent, row_id)
        assert row is not None
        row.status = status


def test_a_breach_alerts_once_and_its_recovery_once(ops: Container) -> None:
    slo = ops.slo_status
    assert slo.check()["breaches"] == 0 and _alerts(ops) == []  # healthy: no news
    row_id = _stuck_event(ops, minutes=45)
    first = slo.check()
    assert first == {"objectives": 2, "breaches": 1, "changes": 1}
    assert slo.check()["changes"] == 0 and slo.check()["changes"] == 0  # still in breach
    alerts = _alerts(ops)
    assert len(alerts) == 1 and alerts[0].startswith("slo:inbox_age_minutes:breach:")
    status = {s.name: s for s in slo.status()}
    assert not status["inbox_age_minutes"].ok and status["inbox_age_minutes"].since is not None
    assert float(status["inbox_age_minutes"].value or 0) >= 45
    assert status["webhook_success"].ok and status["webhook_success"].value is None

    _set_status(ops, row_id, "handled")
    assert slo.check() == {"objectives": 2, "breaches": 0, "changes": 1}
    slo.check()
    alerts = _alerts(ops)
    assert len(alerts) == 2 and alerts[1].startswith("slo:inbox_age_minutes:ok:")
    status = {s.name: s for s in slo.status()}
    assert status["inbox_age_minutes"].ok and status["webhook_success"].value == "1.0000"


def test_status_over_http_and_the_cli(ops: Container, auth: dict[str, str]) -> None:
    _stuck_event(ops, minutes=90)
    ops.slo_status.check()
    with TestClient(create_app(ops)) as api:
        assert api.get("/status").status_code == 401
        body = api.get("/status", headers=auth).json()
    assert body["ok"] is False
    found = {s["name"]: s for s in body["data"]}
    assert found["inbox_age_minutes"]["objective"] == "<= 30 minutes"
    assert found["inbox_age_minutes"]["ok"] is False and found["inbox_age_minutes"]["since"]

    result = CliRunner().invoke(app, ["status", "--json"], obj=CliContext(
        settings_factory=lambda: ops.settings, container_factory=lambda _settings: ops,
        close_container=False, lasting_sandbox=False))
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert {s["name"]: s["ok"] for s in data["data"]} == {
        "inbox_age_minutes": False, "webhook_success": True}


def test_the_shipped_slos_load_and_bad_ones_are_refused() -> None:
    names = {s.name for s in load_slos()}
    assert {"webhook_success", "payment_first_attempt", "usage_sync_lag_hours",
            "invoice_generation_failures", "drifts_open", "unreconciled_cents",
            "inbox_age_minutes"} == names
    with pytest.raises(InvalidInput, match="not a measure meterbill knows"):
        parse_slos('[uptime]\nobjective = ">= 1"\nwindow = "1h"\n')
    with pytest.raises(InvalidInput, match=r'objective must look like ">= 0.99"'):
        parse_slos('[drifts_open]\nobjective = "== 0"\nwindow = "1h"\n')
    with pytest.raises(InvalidInput, match="window must look like"):
        parse_slos('[drifts_open]\nobjective = "<= 0"\nwindow = "a week"\n')


def test_the_seeds_thresholds_measured_from_the_inbox(container: Container) -> None:
    """First-attempt payments and webhook success, from the events the inbox holds."""
    now = datetime.now(UTC)
    rows = [("invoice.payment_succeeded", 1, "handled"), ("invoice.payment_failed", 1, "handled"),
            ("invoice.payment_succeeded", 2, "handled"), ("invoice.paid", 1, "handled"),
            ("customer.updated", None, "dead")]
    with container.db.session() as session:
        for i, (kind, attempt, status) in enumerate(rows):
            obj = {"id": f"in_{i}", "object": "invoice", "attempt_count": attempt}
            session.add(WebhookEvent(event_id=f"evt_{i}", type=kind, object_id=f"in_{i}",
                                     created=now, received_at=now, status=status,
                                     payload=json.dumps({"data": {"object": obj}})))
    found = {s.name: s for s in container.slo_status.status()}
    # Two first attempts, one paid: 0.5 < 0.85. Four of five events handled: 0.8 < 0.99.
    assert (found["payment_first_attempt"].value, found["payment_first_attempt"].ok) == (
        "0.5000", False)
    assert (found["webhook_success"].value, found["webhook_success"].ok) == ("0.8000", False)
    assert found["drifts_open"].ok and found["drifts_open"].value == "0"
    assert found["usage_sync_lag_hours"].value is None  # the sync never ran: nothing late
