"""`GET /metrics` after a known sequence, read back with prometheus-client's own parser: the
counters moved by exactly what was done, the database gauges say what the database holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from meterbill.adapters.metrics import operation
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents
from meterbill.entrypoints.api import create_app
from meterbill.entrypoints.api.webhooks import install

from ..conftest import API_TOKEN
from .conftest import fake_event, sign

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def api(container: Container, hooks: WebhookComponents) -> Iterator[TestClient]:
    container.webhooks = hooks  # type: ignore[attr-defined]
    app = create_app(container)
    install(app, container)
    with TestClient(app) as client:
        yield client


def scrape(api: TestClient) -> Samples:
    answer = api.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    found: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_counters_and_gauges_after_a_known_sequence(
        api: TestClient, container: Container, hooks: WebhookComponents) -> None:
    before = scrape(api)
    assert api.post("/customers", headers=AUTH, json={
        "tenant_id": "acme", "email": "ops@acme.test"}).status_code in (200, 201)
    stamp = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    events = [{"event_id": f"e{i}", "tenant_id": "acme", "timestamp": stamp} for i in range(3)]
    events.append({"event_id": "bad", "tenant_id": "nobody", "timestamp": stamp})
    assert api.post("/usage/events", headers=AUTH, json={"events": events}).status_code < 300
    body = fake_event("invoice.paid", {"id": "in_1", "object": "invoice", "customer": "cus_1"})
    for _ in range(2):  # the second delivery is a repeat
        assert api.post("/webhooks/stripe", content=body,
                        headers={"Stripe-Signature": sign(body)}).status_code == 200
    assert api.post("/webhooks/stripe", content=body,
                    headers={"Stripe-Signature": "t=1,v1=00"}).status_code == 400
    container.jobs.run("slo-check")
    after = scrape(api)

    assert moved(before, after, "meterbill_usage_events_ingested_total") == 3
    assert moved(before, after, "meterbill_usage_events_rejected_total") == 1
    assert moved(before, after, "meterbill_webhook_events_received_total",
                 type="invoice.paid", outcome="stored") == 1
    assert moved(before, after, "meterbill_webhook_events_received_total",
                 type="invoice.paid", outcome="duplicate") == 1
    assert moved(before, after, "meterbill_webhook_events_received_total",
                 type="unknown", outcome="rejected") == 1
    assert moved(before, after, "meterbill_webhook_ack_seconds_count") == 3
    assert moved(before, after, "meterbill_stripe_requests_total",
                 operation="POST /v1/customers", outcome="ok") == 1
    assert moved(before, after, "meterbill_stripe_request_seconds_count",
                 operation="POST /v1/customers") == 1
    assert moved(before, after, "meterbill_job_runs_total", job="slo-check", outcome="ok") == 1
    # Gauges: what the database holds now.
    assert after[("meterbill_tenants", (("access", "none"),))] == 1.0
    assert after[("meterbill_inbox_backlog", ())] == 1.0  # the stored event, not yet run
    assert after[("meterbill_inbox_oldest_unhandled_seconds", ())] >= 0.0
    assert after[("meterbill_slo_ok", (("slo", "drifts_open"),))] == 1.0


def test_operation_names_carry_no_ids() -> None:
    assert operation("get", "https://api.stripe.test/v1/subscriptions/sub_1AbCdEfGh?x=1") == \
        "GET /v1/subscriptions/{id}"
    assert operation("POST", "http://127.0.0.1:8/v1/invoices/in_9ZZZZZZZ/pay") == \
        "POST /v1/invoices/{id}/pay"
    assert operation("GET", "http://127.0.0.1:8/v1/subscriptions") == "GET /v1/subscriptions"
