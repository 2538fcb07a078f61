"""Webhook endpoints and signed delivery to a real local HTTP receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from stripe_sandbox import Sandbox
from stripe_sandbox.delivery import DeliveryConfig, Dispatcher, install, sign

from .stripe_reference import fixtures

FIXTURES = fixtures()


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1: answers `statuses` in turn (then 200), records bodies.

    `gate`, when set up, holds every request until released; `hold_first` holds only the first.
    """

    daemon_threads = True

    def __init__(self, statuses: list[int] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.statuses = list(statuses or [])
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Condition()
        self.gate: threading.Event | None = None
        self.hold_first: threading.Event | None = None
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/webhooks"

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.received) >= count, timeout)

    def event_ids(self) -> list[str]:
        return [json.loads(body)["id"] for _, body in self.received]

    def close(self) -> None:
        for gate in (self.gate, self.hold_first):
            if gate is not None:
                gate.set()
        self.shutdown()
        self.server_close()


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        receiver = self.server
        with receiver.arrived:
            first = not receiver.received
            receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            receiver.arrived.notify_all()
        hold = receiver.gate or (receiver.hold_first if first else None)
        if hold is not None:
            hold.wait(10)
        try:
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        except OSError:  # the sandbox gave up waiting (a timeout test)
            pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def dispatcher(sandbox: Sandbox) -> Iterator[Dispatcher]:
    sender = install(sandbox, DeliveryConfig(retry_base_seconds=0.01, timeout_seconds=5))
    yield sender
    sender.close()


def _endpoint(client: stripe.StripeClient, url: str, events: list[str] | None = None) -> Any:
    return client.v1.webhook_endpoints.create(
        params={"url": url, "enabled_events": events or ["*"]}
    )


# --- endpoints -------------------------------------------------------------------------------


def test_endpoint_lifecycle_and_secret_shown_once(client: stripe.StripeClient) -> None:
    created = client.v1.webhook_endpoints.create(
        params={"url": "https://example.com/hook", "enabled_events": ["invoice.paid", "*"],
                "description": "billing", "metadata": {"team": "b"}}
    )
    assert created.id.startswith("we_") and created.secret.startswith("whsec_")
    assert created.status == "enabled" and created.enabled_events == ["invoice.paid", "*"]
    assert set(FIXTURES["webhook_endpoint"]) <= set(created.to_dict())
    fetched = client.v1.webhook_endpoints.retrieve(created.id)
    assert "secret" not in fetched.to_dict() and fetched.url == "https://example.com/hook"

    updated = client.v1.webhook_endpoints.update(
        created.id, params={"disabled": True, "enabled_events": ["customer.created"]}
    )
    assert updated.status == "disabled" and updated.enabled_events == ["customer.created"]
    assert "secret" not in updated.to_dict()
    assert client.v1.webhook_endpoints.update(created.id, params={"disabled": False}).status \
        == "enabled"
    assert [e.id for e in client.v1.webhook_endpoints.list().data] == [created.id]

    assert client.v1.webhook_endpoints.delete(created.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.webhook_endpoints.retrieve(created.id)
    assert info.value.http_status == 404 and info.value.code == "resource_missing"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"enabled_events": ["*"]}, "url"),
        ({"url": "ftp://example.com", "enabled_events": ["*"]}, "url"),
        ({"url": "https://example.com", "enabled_events": ["Not An Event"]}, "enabled_events[0]"),
        ({"url": "https://example.com", "enabled_events": ["invoice.paid", "invoice.nope"]},
         "enabled_events[1]"),
    ],
)
def test_invalid_endpoint_is_refused(client: stripe.StripeClient, params: dict[str, Any],
                                     param: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.webhook_endpoints.create(params=params)  # type: ignore[arg-type]
    assert info.value.param == param


# --- delivery --------------------------------------------------------------------------------


def test_delivery_verifies_with_construct_event(client: stripe.StripeClient, sandbox: Sandbox,
                                                 receiver: Receiver,
                                                 dispatcher: Dispatcher) -> None:
    endpoint = _endpoint(client, receiver.url, ["customer.created"])
    customer = client.v1.customers.create(params={"email": "hook@example.com"})
    client.v1.customers.update(customer.id, params={"name": "not listened to"})
    assert dispatcher.wait_idle()

    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    assert headers["content-type"].startswith("application/json")
    event = stripe.Webhook.construct_event(body, headers["stripe-signature"], endpoint.secret)
    assert event.type == "customer.created"
    assert event.data.object.id == customer.id
    assert client.v1.events.retrieve(event.id).pending_webhooks == 0
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, headers["stripe-signature"], "whsec_wrong")


def test_signature_is_hmac_of_timestamp_and_body() -> None:
    header = sign(b'{"id": "evt_1"}', "whsec_abc", 1700000000)
    stripe.WebhookSignature.verify_header('{"id": "evt_1"}', header, "whsec_abc",
                                          tolerance=None)
    assert header.startswith("t=1700000000,v1=")


def test_receiver_answering_500_twice_gets_the_event_a_third_time(
    client: stripe.StripeClient, receiver: Receiver, dispatcher: Dispatcher
) -> None:
    receiver.statuses = [500, 500]
    endpoint = _endpoint(client, receiver.url)
    customer = client.v1.customers.create(params={"email": "retry@example.com"})
    assert dispatcher.wait_idle()

    ids = receiver.event_ids()
    assert len(ids) == 3 and len(set(ids)) == 1
    attempts = dispatcher.attempts_for(event_id=ids[0], endpoint_id=endpoint.id)
    assert [(a.attempt, a.status) for a in attempts] == [(1, 500), (2, 500), (3, 200)]
    event = stripe.Webhook.construct_event(receiver.received[2][1],
                                           receiver.received[2][0]["stripe-signature"],
                                           endpoint.secret)
    assert event.data.object.id == customer.id
    assert client.v1.events.retrieve(event.id).pending_webhooks == 0


def test_attempts_stop_after_max_attempts(client: stripe.StripeClient, receiver: Receiver,
                                          dispatcher: Dispatcher) -> None:
    dispatcher.configure(max_attempts=2)
    receiver.statuses = [503] * 5
    _endpoint(client, receiver.url)
    client.v1.customers.create(params={"email": "down@example.com"})
    assert dispatcher.wait_idle()
    assert len(receiver.received) == 2
    event_id = receiver.event_ids()[0]
    assert client.v1.events.retrieve(event_id).pending_webhooks == 1
    assert [e.id for e in client.v1.events.list(params={"delivery_success": False}).data] \
        == [event_id]


def test_no_answer_within_timeout_is_retried(client: stripe.StripeClient, receiver: Receiver,
                                             dispatcher: Dispatcher) -> None:
    dispatcher.configure(timeout_seconds=0.2)
    receiver.hold_first = threading.Event()
    endpoint = _endpoint(client, receiver.url)
    client.v1.customers.create(params={"email": "slow@example.com"})
    assert dispatcher.wait_idle()
    attempts = dispatcher.attempts_for(endpoint_id=endpoint.id)
    assert [a.status for a in attempts] == [None, 200]
    assert "timed out" in (attempts[0].error or "").lower()


def test_delivery_does_not_block_the_api_call(client: stripe.StripeClient, receiver: Receiver,
                                              dispatcher: Dispatcher) -> None:
    receiver.gate = threading.Event()
    _endpoint(client, receiver.url)
    customer = client.v1.customers.create(params={"email": "fast@example.com"})
    # The receiver now holds the delivery; the API answered anyway, and answers again.
    assert receiver.wait_for(1)
    assert client.v1.customers.retrieve(customer.id).id == customer.id
    assert not dispatcher.attempts_for()
    receiver.gate.set()
    assert dispatcher.wait_idle()
    assert [a.ok for a in dispatcher.attempts_for()] == [True]


def test_duplicate_knob_delivers_each_event_twice(client: stripe.StripeClient,
                                                  receiver: Receiver,
                                                  dispatcher: Dispatcher) -> None:
    dispatcher.configure(duplicate=True)
    _endpoint(client, receiver.url)
    client.v1.customers.create(params={"email": "twice@example.com"})
    assert dispatcher.wait_idle()
    ids = receiver.event_ids()
    assert len(ids) == 2 and ids[0] == ids[1]
    assert client.v1.events.retrieve(ids[0]).pending_webhooks == 0


def test_shuffle_knob_delivers_out_of_order(client: stripe.StripeClient, sandbox: Sandbox,
                                            receiver: Receiver, dispatcher: Dispatcher) -> None:
    dispatcher.configure(shuffle_seconds=0.3, workers=1, seed=7)
    _endpoint(client, receiver.url)
    emitted = [client.v1.customers.create(params={"email": f"{i}@example.com"}).id
               for i in range(8)]
    assert dispatcher.wait_idle()
    delivered = [json.loads(body)["data"]["object"]["id"] for _, body in receiver.received]
    assert sorted(delivered) == sorted(emitted)
    assert delivered != emitted


def test_delay_knob_holds_deliveries_back(client: stripe.StripeClient, receiver: Receiver,
                                          dispatcher: Dispatcher) -> None:
    dispatcher.configure(delay_seconds=60)
    _endpoint(client, receiver.url)
    client.v1.customers.create(params={"email": "later@example.com"})
    assert not dispatcher.wait_idle(timeout=0.2)
    assert receiver.received == []
    pending = client.v1.events.list(params={"type": "customer.created"}).data[0]
    assert pending.pending_webhooks == 1


def test_only_enabled_matching_endpoints_receive(client: stripe.StripeClient,
                                                 receiver: Receiver,
                                                 dispatcher: Dispatcher) -> None:
    other = Receiver()
    try:
        listening = _endpoint(client, receiver.url, ["customer.updated"])
        disabled = _endpoint(client, other.url)
        client.v1.webhook_endpoints.update(disabled.id, params={"disabled": True})
        customer = client.v1.customers.create(params={"email": "x@example.com"})
        client.v1.customers.update(customer.id, params={"name": "X"})
        assert dispatcher.wait_idle()
        assert other.received == []
        assert [json.loads(b)["type"] for _, b in receiver.received] == ["customer.updated"]
        assert {a.endpoint_id for a in dispatcher.attempts_for()} == {listening.id}
    finally:
        other.close()


def test_deleted_endpoint_gets_no_more_retries(client: stripe.StripeClient,
                                               receiver: Receiver,
                                               dispatcher: Dispatcher) -> None:
    receiver.statuses = [500] * 4
    receiver.hold_first = threading.Event()
    endpoint = _endpoint(client, receiver.url)
    client.v1.customers.create(params={"email": "gone@example.com"})
    assert receiver.wait_for(1)
    client.v1.webhook_endpoints.delete(endpoint.id)
    receiver.hold_first.set()  # the first attempt now fails; its retry finds no endpoint
    assert dispatcher.wait_idle()
    assert len(receiver.received) == 1
    assert [a.status for a in dispatcher.attempts_for()] == [500]


def test_control_page_changes_delivery_knobs(sandbox: Sandbox, client: stripe.StripeClient,
                                             receiver: Receiver, dispatcher: Dispatcher) -> None:
    answer = sandbox.page("POST", "/_sandbox/webhooks", {"Content-Type": "application/json"},
                          json.dumps({"duplicate": True, "max_attempts": 2}).encode())
    assert answer.status == 200
    assert dispatcher.config.duplicate and dispatcher.config.max_attempts == 2
    _endpoint(client, receiver.url)
    client.v1.customers.create(params={"email": "knob@example.com"})
    assert dispatcher.wait_idle()
    shown = json.loads(sandbox.page("GET", "/_sandbox/webhooks", {}, b"").body)
    assert [a["ok"] for a in shown["attempts"]] == [True, True]
    refused = sandbox.page("POST", "/_sandbox/webhooks", {}, b"max_attempts=0")
    assert refused.status == 400 and "max_attempts" in json.loads(refused.body)["error"]


def test_forward_to_registers_one_endpoint_for_every_event(sandbox: Sandbox) -> None:
    from stripe_sandbox.__main__ import _forward

    secret = _forward(sandbox, "http://127.0.0.1:9/hook")
    assert secret.startswith("whsec_")
    assert _forward(sandbox, "http://127.0.0.1:9/hook") == secret  # reused, e.g. after --data
    (endpoint,) = sandbox.store.all("webhook_endpoint")
    assert endpoint["enabled_events"] == ["*"]
