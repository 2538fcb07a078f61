"""`/admin/usage/sync|reconcile|flush`: what `meterbill usage sync|reconcile` (and webhook replays
that flush usage) ask a running server for, answering with the documents the CLI prints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from meterbill.bootstrap import Container

from .support import error_of

NOW = datetime.now(UTC).replace(microsecond=0)


def _ingest(api: TestClient, auth: dict[str, str], tenant: str, *quantities: int) -> None:
    stamp = (NOW - timedelta(minutes=5)).isoformat()
    events = [{"event_id": f"{tenant}-{i}", "tenant_id": tenant, "timestamp": stamp,
               "quantity": q} for i, q in enumerate(quantities)]
    response = api.post("/usage/events", headers=auth, json={"events": events})
    assert response.status_code == 200, response.text


def test_sync_reports_the_usage_stripes_meter_lacks(
        api: TestClient, auth: dict[str, str], container: Container,
        subscribed: dict[str, Any]) -> None:
    tenant = subscribed["tenant_id"]
    _ingest(api, auth, tenant, 5, 7)
    response = api.post("/admin/usage/sync", headers=auth, json={"tenants": [tenant]})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["counts"]["sent"] == 1 and report["sent"] == 12
    assert [(t["tenant_id"], t["status"], t["sent"]) for t in report["tenants"]] == [
        (tenant, "sent", 12)]
    assert set(report) == {"first_day", "last_day", "started_at", "finished_at", "counts",
                           "sent", "corrected", "calls", "tenants", "failed", "omitted"}
    # Nothing new: a second run sends nothing (the ledger remembers the first).
    again = api.post("/admin/usage/sync", headers=auth, json={}).json()
    assert again["sent"] == 0 and again["counts"]["failed"] == 0


def test_sync_takes_one_day_or_since_not_both(api: TestClient, auth: dict[str, str]) -> None:
    day = NOW.date().isoformat()
    one_day = api.post("/admin/usage/sync", headers=auth, json={"date": day})
    assert one_day.status_code == 200
    assert one_day.json()["first_day"] == one_day.json()["last_day"] == day
    both = api.post("/admin/usage/sync", headers=auth, json={"date": day, "since": day})
    assert both.status_code == 400
    assert error_of(both)["field"] == "since"
    bad = api.post("/admin/usage/sync", headers=auth, json={"date": "yesterday"})
    assert bad.status_code == 422 and error_of(bad)["field"] == "date"


def test_reconcile_answers_the_report_the_cli_prints(
        api: TestClient, auth: dict[str, str], subscribed: dict[str, Any]) -> None:
    tenant = subscribed["tenant_id"]
    response = api.post("/admin/usage/reconcile", headers=auth,
                        json={"period": "current", "tenants": [tenant]})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["period"] == "current"
    assert [t["tenant_id"] for t in report["tenants"]] == [tenant]
    assert set(report["counts"]) == {"ok", "drift", "failed", "skipped"}
    bad = api.post("/admin/usage/reconcile", headers=auth, json={"period": "May"})
    # the usage view's period rule and answer (one parser for both routes)
    assert bad.status_code == 422 and error_of(bad)["field"] == "period"


def test_flush_reports_a_customers_usage_up_to_the_period_end(
        api: TestClient, auth: dict[str, str], container: Container,
        subscribed: dict[str, Any]) -> None:
    tenant = subscribed["tenant_id"]
    _ingest(api, auth, tenant, 3)
    end = NOW + timedelta(hours=1)
    response = api.post("/admin/usage/flush", headers=auth, json={
        "customer_id": subscribed["customer_id"], "period_end": end.isoformat()})
    assert response.status_code == 200, response.text
    assert response.json()["flushed"] is True
    # What the flush sent is in the ledger: a sync now has nothing left to send.
    assert api.post("/admin/usage/sync", headers=auth, json={}).json()["sent"] == 0
