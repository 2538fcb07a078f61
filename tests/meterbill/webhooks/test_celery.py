"""The Celery path: the API sends row ids to Redis, a real `meterbill worker` process handles
them (against the test's sandbox over HTTP). Runs when METERBILL_TEST_REDIS_URL is set."""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe
from fastapi.testclient import TestClient

from meterbill.adapters.tasks.celery_app import CeleryTaskRunner
from meterbill.bootstrap import Container
from meterbill.entrypoints.api import create_app
from meterbill.entrypoints.api.webhooks import install
from meterbill.webhooks_wiring import build_webhooks
from stripe_sandbox import Sandbox
from stripe_sandbox.server import SandboxServer

from .conftest import (
    event_body,
    inbox_rows,
    make_options,
    pay_renewal,
    sign,
    start_renewal,
    stripe_events,
    tenant_state,
)

REDIS_ENV = "METERBILL_TEST_REDIS_URL"

pytestmark = pytest.mark.skipif(not os.environ.get(REDIS_ENV),
                                reason=f"{REDIS_ENV} is not set (no Redis for Celery)")


@pytest.fixture
def sandbox_url(sandbox: Sandbox) -> Iterator[str]:
    server = SandboxServer(sandbox, port=0).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def worker(container: Container, sandbox_url: str, tmp_path: Path) -> Iterator[str]:
    """A `meterbill worker` process on a queue of this test's own; yields the queue name."""
    queue = f"meterbill-test-{secrets.token_hex(4)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    env.update(DATABASE_URL=container.settings.database_url, STRIPE_API_BASE=sandbox_url,
               STRIPE_MAX_NETWORK_RETRIES="0", CELERY_BROKER_URL=os.environ[REDIS_ENV],
               METERBILL_CELERY_QUEUE=queue)
    process = subprocess.Popen(
        [sys.executable, "-m", "meterbill.entrypoints.worker", "--concurrency", "4",
         "--loglevel", "WARNING"], env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "worker.log").open("w"))
    try:
        yield queue
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_events_sent_through_redis_are_handled_once_by_a_worker_process(
        container: Container, sandbox: Sandbox, stripe_client: stripe.StripeClient,
        worker: str, tmp_path: Path) -> None:
    options = make_options(task_runner="celery", celery_broker_url=os.environ[REDIS_ENV],
                           celery_queue=worker)
    hooks = build_webhooks(container, options=options,
                           runner=CeleryTaskRunner.from_options(options))
    container.webhooks = hooks  # type: ignore[attr-defined]
    scenario, _ = start_renewal(container, stripe_client)
    pay_renewal(stripe_client, scenario)
    events = stripe_events(sandbox, scenario.customer_id)
    shuffled = events * 2
    random.Random(3).shuffle(shuffled)
    app = create_app(container)
    install(app, container)
    with TestClient(app) as api:
        for event in shuffled:
            body = event_body(event)
            answer = api.post("/webhooks/stripe", content=body,
                              headers={"Stripe-Signature": sign(body)})
            assert answer.status_code == 200
    deadline = time.monotonic() + 60
    while any(r.status not in ("handled", "ignored") for r in inbox_rows(container)):
        log = (tmp_path / "worker.log").read_text()
        assert time.monotonic() < deadline, f"the worker did not finish; its log:\n{log}"
        time.sleep(0.1)
    rows = inbox_rows(container)
    assert sorted(r.event_id for r in rows) == sorted(e["id"] for e in events)
    assert all((r.status, r.attempts) in (("handled", 1), ("ignored", 0)) for r in rows)
    state = tenant_state(container, scenario.tenant_id)
    assert state["billing_status"] == "active" and state["payment_failures"] == 0
    assert state["current_plan"] == "starter"
