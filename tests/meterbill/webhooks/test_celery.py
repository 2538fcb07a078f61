"""The Celery path: the API sends row ids to the broker, a real `meterbill worker --beat`
process handles them (against the test's sandbox over HTTP), and its beat sweeps rows whose
message was lost. On Redis when METERBILL_TEST_REDIS_URL is set, on RabbitMQ when
METERBILL_TEST_AMQP_URL is set (`.ci/run` sets both)."""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import update

from meterbill.adapters.db.inbox import WebhookEvent
from meterbill.adapters.tasks.celery_app import CeleryTaskRunner
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import build_webhooks
from meterbill.domain.clock import utcnow
from meterbill.entrypoints.api import create_app
from meterbill.entrypoints.api.webhooks import install
from meterbill.ports.webhooks import parse_event
from stripe_sandbox import Sandbox
from stripe_sandbox.server import SandboxServer

from .conftest import (
    ManualRunner,
    event_body,
    inbox_rows,
    make_options,
    pay_renewal,
    sign,
    start_renewal,
    stripe_events,
    tenant_state,
)

BROKER_ENVS = {"redis": "METERBILL_TEST_REDIS_URL", "amqp": "METERBILL_TEST_AMQP_URL"}


@pytest.fixture(params=sorted(BROKER_ENVS))
def broker(request: pytest.FixtureRequest) -> str:
    env = BROKER_ENVS[request.param]
    url = os.environ.get(env)
    if not url:
        pytest.skip(f"{env} is not set (no {request.param} broker for Celery)")
    return url


@pytest.fixture
def sandbox_url(sandbox: Sandbox) -> Iterator[str]:
    server = SandboxServer(sandbox, port=0).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def worker(container: Container, sandbox_url: str, broker: str,
           tmp_path: Path) -> Iterator[str]:
    """A `meterbill worker --beat` process on a queue of this test's own; yields the queue."""
    queue = f"meterbill-test-{secrets.token_hex(4)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    env.update(DATABASE_URL=container.settings.database_url, STRIPE_API_BASE=sandbox_url,
               STRIPE_MAX_NETWORK_RETRIES="0", CELERY_BROKER_URL=broker,
               METERBILL_CELERY_QUEUE=queue)
    with (tmp_path / "worker.log").open("w") as log:
        # A session of its own: beat runs in a child process that must end with the worker.
        process = subprocess.Popen(
            [sys.executable, "-m", "meterbill.entrypoints.worker", "--concurrency", "4",
             "--loglevel", "WARNING", "--beat", "--sweep-interval", "0.5"], env=env,
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        yield queue
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        _delete_queue(broker, queue)


def _delete_queue(broker: str, queue: str) -> None:
    from kombu import Connection

    with contextlib.suppress(Exception), Connection(broker) as connection:
        connection.default_channel.queue_delete(queue)
    if broker.startswith("redis"):  # kombu leaves its binding sets behind
        import redis

        client = redis.Redis.from_url(broker)
        client.delete(f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        client.close()


def _wait_until_done(container: Container, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while any(r.status not in ("handled", "ignored") for r in inbox_rows(container)):
        assert time.monotonic() < deadline, (
            f"the worker did not finish; its log:\n{log.read_text()}")
        time.sleep(0.1)


def test_events_go_through_the_broker_to_a_worker_and_beat_sweeps_a_lost_one(
        container: Container, sandbox: Sandbox, stripe_client: stripe.StripeClient,
        broker: str, worker: str, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    options = make_options(task_runner="celery", celery_broker_url=broker, celery_queue=worker)
    hooks = build_webhooks(container, options=options,
                           runner=CeleryTaskRunner.from_options(options))
    container.webhooks = hooks  # type: ignore[attr-defined]
    scenario, _ = start_renewal(container, stripe_client)
    pay_renewal(stripe_client, scenario)
    events = stripe_events(sandbox, scenario.customer_id)
    [paid] = [e for e in events if e["type"] == "invoice.paid"
              and e["data"]["object"]["id"] == scenario.renewal_invoice]
    delivered = [e for e in events if e is not paid]
    shuffled = delivered * 2
    random.Random(3).shuffle(shuffled)
    app = create_app(container)
    install(app, container)
    with TestClient(app) as api:
        for event in shuffled:
            body = event_body(event)
            answer = api.post("/webhooks/stripe", content=body,
                              headers={"Stripe-Signature": sign(body)})
            assert answer.status_code == 200
    _wait_until_done(container, log)
    rows = inbox_rows(container)
    assert sorted(r.event_id for r in rows) == sorted(e["id"] for e in delivered)
    assert all((r.status, r.attempts) in (("handled", 1), ("ignored", 0)) for r in rows), [
        (r.type, r.status, r.attempts, r.last_error) for r in rows if r.attempts > 1]
    assert tenant_state(container, scenario.tenant_id)["current_plan"] == "starter"

    # The renewal's invoice.paid is stored, but its message never reaches the broker (a runner
    # that sends nothing): the worker's beat sweep finds the row and a worker handles it.
    lost = ManualRunner()
    quiet = build_webhooks(container, options=make_options(), runner=lost)
    receipt = quiet.intake.store(parse_event(event_body(paid)))
    quiet.close()
    assert receipt.new and lost.submitted == [receipt.row_id]
    with container.db.session() as session:  # old enough for the sweep (60 s by default)
        session.execute(update(WebhookEvent).where(WebhookEvent.id == receipt.row_id)
                        .values(received_at=utcnow() - timedelta(minutes=5)))
    _wait_until_done(container, log)
    [row] = [r for r in inbox_rows(container) if r.event_id == paid["id"]]
    assert (row.status, row.attempts) == ("handled", 1)
    assert scenario.renewal_invoice in (row.note or "")  # its handler ran, in the worker
    state = tenant_state(container, scenario.tenant_id)
    assert state["billing_status"] == "active" and state["payment_failures"] == 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:  # a zombie (killed, not yet reaped) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_beat_ends_when_its_worker_is_killed(container: Container, broker: str,
                                            tmp_path: Path) -> None:
    queue = f"meterbill-test-{secrets.token_hex(4)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    env.update(DATABASE_URL=container.settings.database_url, CELERY_BROKER_URL=broker,
               METERBILL_CELERY_QUEUE=queue)
    process = subprocess.Popen(
        [sys.executable, "-m", "meterbill.entrypoints.worker", "--concurrency", "1",
         "--loglevel", "WARNING", "--beat"], env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (beat := _children(process.pid)):  # the threads pool forks only beat
            assert process.poll() is None and time.monotonic() < deadline, "no beat started"
            time.sleep(0.2)
        time.sleep(1)  # past beat's start-up
        os.kill(process.pid, signal.SIGKILL)  # the worker only: nobody to stop beat
        process.wait()
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in beat):
            assert time.monotonic() < deadline, f"beat {beat} outlived its killed worker"
            time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        _delete_queue(broker, queue)
