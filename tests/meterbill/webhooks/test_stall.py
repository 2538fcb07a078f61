"""A PostgreSQL that goes silent costs webhook deliveries a 503 within the store bound, not a
hung request; once it answers again deliveries succeed, and every event answered 200 is in the
inbox.

The stall is a TCP relay in front of the test database that can stop relaying without closing
anything: connections stay open, bytes sent are accepted by the relay's socket and go nowhere,
nothing comes back, as with a network path or a server that silently stopped.
"""

from __future__ import annotations

import os
import secrets
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from meterbill.adapters.db.inbox import InboxRepository
from meterbill.adapters.db.session import Database
from meterbill.bootstrap import Container, build
from meterbill.bootstrap.webhooks import build_webhooks
from meterbill.entrypoints.api import create_app
from meterbill.entrypoints.api.webhooks import install

from ..conftest import PG_ENV, make_settings
from .conftest import ManualRunner, fake_event, make_options, sign

needs_postgres = pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"needs {PG_ENV}")

BOUND = 1.0  # WEBHOOK_STORE_TIMEOUT_SECONDS for the test
SLACK = 1.5  # what a 503 may take beyond the bound (the test client, a loaded machine)


class StallingRelay:
    """127.0.0.1:<port> → the database; `stall()` stops relaying (nothing closed), `resume()`
    relays again, with whatever was held back."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.relaying = threading.Event()
        self.relaying.set()
        self.closed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        self.relaying.clear()

    def resume(self) -> None:
        self.relaying.set()

    def close(self) -> None:
        self.closed.set()
        self.relaying.set()
        for sock in self.sockets:
            sock.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        while not self.closed.is_set():
            self.relaying.wait()  # stalled: read nothing, send nothing, close nothing
            try:
                ready, _, _ = select.select([source], [], [], 0.05)
                if not ready:
                    continue
                if not self.relaying.is_set():  # stalled while waiting: hold the bytes
                    continue
                data = source.recv(65536)
                if not data:
                    target.shutdown(socket.SHUT_WR)
                    return
                target.sendall(data)
            except (OSError, ValueError):
                return


@pytest.fixture
def schema_url() -> Iterator[str]:
    """A fresh schema in the test database (its URL goes straight to the server)."""
    base = make_url(os.environ[PG_ENV])
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def relay(schema_url: str) -> Iterator[StallingRelay]:
    url = make_url(schema_url)
    running = StallingRelay(url.host or "127.0.0.1", url.port or 5432)
    yield running
    running.close()


@pytest.fixture
def stalling(schema_url: str, relay: StallingRelay) -> Iterator[Container]:
    """meterbill whose every database connection goes through the relay."""
    through = make_url(schema_url).set(host="127.0.0.1", port=relay.port)
    settings = make_settings(through.render_as_string(hide_password=False),
                             database_connect_timeout_seconds=2,
                             database_pool_timeout_seconds=BOUND,
                             webhook_store_timeout_seconds=BOUND)
    container = build(settings)
    container.upgrade_db()
    try:
        yield container
    finally:
        relay.resume()
        container.close()


def _post(api: TestClient, event_id: str) -> tuple[int, float]:
    """(status, seconds) of one delivery; (0, seconds) if it got no answer in time."""
    body = fake_event("invoice.paid", {"id": "in_1", "object": "invoice", "customer": "cus_1"},
                      event_id=event_id)
    answer: list[int] = []
    started = time.monotonic()

    def deliver() -> None:
        answer.append(api.post("/webhooks/stripe", content=body,
                               headers={"Stripe-Signature": sign(body)}).status_code)

    worker = threading.Thread(target=deliver, daemon=True)  # a hang must fail, not block
    worker.start()
    worker.join(BOUND + SLACK + 5)
    return (answer[0] if answer else 0), time.monotonic() - started


@pytest.mark.postgres
@needs_postgres
def test_a_stalled_database_answers_503_in_time_and_loses_nothing_answered_200(
        stalling: Container, relay: StallingRelay, schema_url: str) -> None:
    runner = ManualRunner()
    hooks = build_webhooks(stalling, options=make_options(store_timeout_seconds=BOUND),
                           runner=runner)
    stalling.webhooks = hooks
    app = create_app(stalling)
    install(app, stalling)
    answered: dict[str, int] = {}
    with TestClient(app) as api:
        for n in range(3):
            answered[f"evt_before_{n}"], _ = _post(api, f"evt_before_{n}")
        assert set(answered.values()) == {200}

        relay.stall()
        try:
            for n in range(4):  # the writer's connection is stuck; so is every new one
                status, took = _post(api, f"evt_stalled_{n}")
                answered[f"evt_stalled_{n}"] = status
                assert status == 503, (n, status, took)
                assert took < BOUND + SLACK, (n, took)
        finally:  # also when it failed: a hung request then ends, and so does the test
            relay.resume()
        # Stripe delivers again (its retries) until each is taken; new events arrive too.
        deadline = time.monotonic() + 30
        pending = [f"evt_stalled_{n}" for n in range(4)] + [f"evt_after_{n}" for n in range(3)]
        while pending and time.monotonic() < deadline:
            event_id = pending.pop(0)
            status, _ = _post(api, event_id)
            answered[event_id] = status
            if status != 200:
                pending.append(event_id)
                time.sleep(0.2)
        assert pending == [], answered

    # Read straight from the database, not through the relay.
    direct = Database(schema_url)
    try:
        with direct.session() as session:
            stored = {row.event_id: row for row in InboxRepository(session).recent(limit=1000)}
    finally:
        direct.dispose()
    taken = {event_id for event_id, status in answered.items() if status == 200}
    assert taken == set(answered)  # after the recovery every event was taken
    assert taken <= set(stored), sorted(taken - set(stored))
    assert all(row.type == "invoice.paid" and row.payload for row in stored.values())
    assert len(stored) == len(taken)  # each once, none half-stored or extra
