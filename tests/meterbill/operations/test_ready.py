"""`GET /ready`: database and schema, usage store, Stripe (cached), the scheduler's heartbeat
and the inbox's age; `/health` stays the cheap liveness answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from meterbill.adapters.db.inbox import WebhookEvent
from meterbill.bootstrap import Container
from meterbill.entrypoints.api import create_app

from ..conftest import _DownHTTPClient


def test_ready_when_everything_answers(container: Container) -> None:
    with TestClient(create_app(container)) as api:
        answer = api.get("/ready")
    assert answer.status_code == 200, answer.json()
    assert answer.json() == {"status": "ready", "checks": {
        "database": "ok", "usage_store": "ok", "stripe": "ok", "scheduler": "ok",
        "inbox": "ok"}}


def test_stripe_is_asked_at_most_once_per_cache_period(
        stripe_down: tuple[Container, _DownHTTPClient]) -> None:
    broken, down = stripe_down
    ready = broken.readiness
    ok, checks = ready.check()
    assert not ok and checks["stripe"].startswith("unreachable (")
    assert down.calls >= 1
    ready._stripe_ok_at = 10**12  # a good answer "just now" (monotonic seconds)
    calls = down.calls
    assert ready.check()[1]["stripe"] == "ok" and down.calls == calls


def test_an_old_unhandled_event_or_a_silent_scheduler_is_not_ready(
        container: Container) -> None:
    at = datetime.now(UTC) - timedelta(hours=3)
    with container.db.session() as session:
        session.add(WebhookEvent(event_id="evt_old", type="invoice.paid", object_id="in_1",
                                 created=at, payload="{}", received_at=at, status="failed"))
    ready = container.readiness
    ready.started = datetime.now(UTC) - timedelta(days=1)  # up a day, no job ever ran
    ok, checks = ready.check()
    assert not ok
    assert checks["inbox"].startswith("the oldest unhandled webhook event is 180 min old")
    assert checks["scheduler"].startswith("no job has run ever")
    container.jobs.run("slo-check")  # a heartbeat
    assert container.readiness.check()[1]["scheduler"] == "ok"
