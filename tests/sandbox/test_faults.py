"""Rate limits and injected faults, the control endpoint, flags, and idempotency over HTTP."""

from __future__ import annotations

import json
import threading
import time
import types
import urllib.request
from collections.abc import Iterator

import pytest
import stripe
import stripe._http_client

from stripe_sandbox import Sandbox, SandboxHTTPClient
from stripe_sandbox.__main__ import build_parser, configure
from stripe_sandbox.faults import FaultConfig, Faults, install
from stripe_sandbox.server import SandboxServer


class FakeTime:
    """One clock for the sandbox's rate limiter and stripe-python's retry sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    faults = install(sandbox)
    faults.clock, faults.sleep = fake.clock, fake.sleep
    # stripe-python sleeps between retries with `time.sleep` of its own module.
    monkeypatch.setattr(stripe._http_client, "time",
                        types.SimpleNamespace(time=time.time, sleep=fake.sleep))
    return fake


@pytest.fixture
def server(sandbox: Sandbox) -> Iterator[SandboxServer]:
    running = SandboxServer(sandbox).start()
    yield running
    running.stop()


def _retrying(sandbox: Sandbox, retries: int = 3) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox),
                               max_network_retries=retries)


def test_faults_are_off_by_default(client: stripe.StripeClient, sandbox: Sandbox) -> None:
    faults = install(sandbox)
    assert not faults.active
    for _ in range(30):
        client.v1.customers.list()
    assert faults.stats.as_dict() == dict.fromkeys(faults.stats.as_dict(), 0)


def test_rate_limit_answers_stripes_429(client: stripe.StripeClient, sandbox: Sandbox,
                                        fake_time: FakeTime) -> None:
    sandbox.faults.configure(rate_limit=2)
    client.v1.customers.list()
    client.v1.customers.list()
    with pytest.raises(stripe.RateLimitError) as info:
        client.v1.customers.list()
    assert info.value.http_status == 429
    assert info.value.json_body["error"]["code"] == "rate_limit"
    assert info.value.headers["Stripe-Rate-Limited-Reason"] == "global-rate"
    assert "Stripe-Should-Retry" not in info.value.headers
    fake_time.now += 1.0  # a second later the bucket has refilled
    client.v1.customers.list()


def test_stripe_python_does_not_retry_a_plain_rate_limit(sandbox: Sandbox,
                                                        fake_time: FakeTime) -> None:
    # As against Stripe: its libraries retry lock timeouts, not genuine rate limits.
    sandbox.faults.configure(rate_limit=1)
    client = _retrying(sandbox)
    client.v1.customers.list()
    with pytest.raises(stripe.RateLimitError):
        client.v1.customers.list()
    assert sandbox.faults.stats.rate_limited == 1 and fake_time.sleeps == []


def test_stripe_python_retries_a_rate_limit_that_says_so(sandbox: Sandbox,
                                                         fake_time: FakeTime) -> None:
    sandbox.faults.configure(rate_limit=1, rate_limit_should_retry=True)
    client = _retrying(sandbox)
    client.v1.customers.create(params={"email": "first@example.com"})
    second = client.v1.customers.create(params={"email": "second@example.com"})
    assert second.email == "second@example.com"
    assert sandbox.faults.stats.rate_limited >= 1
    assert len(fake_time.sleeps) == sandbox.faults.stats.rate_limited
    assert len(sandbox.store.all("customer")) == 2


def test_lock_timeouts_are_retried_by_stripe_python(sandbox: Sandbox,
                                                     fake_time: FakeTime) -> None:
    sandbox.faults.configure(lock_timeout_rate=1.0)
    with pytest.raises(stripe.RateLimitError) as info:
        _retrying(sandbox, retries=2).v1.customers.list()
    assert info.value.json_body["error"]["code"] == "lock_timeout"
    assert sandbox.faults.stats.lock_timeouts == 3 and len(fake_time.sleeps) == 2


def test_injected_500s_only_on_matching_paths(sandbox: Sandbox, fake_time: FakeTime) -> None:
    sandbox.faults.configure(error_rate=1.0, paths=("/v1/customers",))
    client = _retrying(sandbox, retries=1)
    with pytest.raises(stripe.APIError) as info:
        client.v1.customers.create(params={"email": "x@example.com"})
    assert info.value.http_status == 500
    assert sandbox.faults.stats.errors == 2  # the first try and stripe-python's one retry
    assert sandbox.store.all("customer") == []
    assert client.v1.webhook_endpoints.list().data == []  # other paths unaffected


def test_latency_is_added_to_the_chosen_share(sandbox: Sandbox, client: stripe.StripeClient,
                                              fake_time: FakeTime) -> None:
    sandbox.faults.configure(latency_ms=250)
    client.v1.customers.list()
    assert fake_time.sleeps == [0.25]
    sandbox.faults.configure(latency_ms=250, latency_rate=0.0)
    client.v1.customers.list()
    assert fake_time.sleeps == [0.25]


def test_fault_dice_follow_the_seed(sandbox: Sandbox) -> None:
    def pattern() -> list[bool]:
        faults = Faults(FaultConfig(error_rate=0.5, seed=42))
        return [faults.before("GET", "/v1/customers", {}) is None for _ in range(40)]

    first = pattern()
    assert first == pattern() and True in first and False in first


def test_dropped_connection_in_process_and_over_http(sandbox: Sandbox,
                                                     server: SandboxServer) -> None:
    install(sandbox).configure(drop_rate=1.0)
    in_process = _retrying(sandbox, retries=0)
    with pytest.raises(stripe.APIConnectionError):
        in_process.v1.customers.list()
    over_http = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": server.url},
                                    max_network_retries=0)
    with pytest.raises(stripe.APIConnectionError):
        over_http.v1.customers.list()
    assert sandbox.faults.stats.dropped == 2


def test_lost_answer_then_retry_with_the_same_key_replays(sandbox: Sandbox) -> None:
    faults = install(sandbox)
    client = _retrying(sandbox, retries=0)
    faults.configure(drop_after_rate=1.0)
    with pytest.raises(stripe.APIConnectionError):
        client.v1.customers.create(params={"email": "lost@example.com"},
                                   options={"idempotency_key": "customer:lost"})
    assert len(sandbox.store.all("customer")) == 1  # it ran; only the answer was lost
    faults.reset()
    again = client.v1.customers.create(params={"email": "lost@example.com"},
                                       options={"idempotency_key": "customer:lost"})
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert again.id == sandbox.store.all("customer")[0]["id"]
    assert len(sandbox.store.all("customer")) == 1


def test_idempotency_key_over_http_under_20_concurrent_requests(
    sandbox: Sandbox, server: SandboxServer
) -> None:
    # Retries on (the same key, as stripe-python sends) cover connections the listen backlog
    # turns away when twenty arrive at once.
    client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": server.url},
                                 max_network_retries=3)
    barrier = threading.Barrier(20)
    made: list[str] = []
    failures: list[BaseException] = []

    def create() -> None:
        barrier.wait()
        try:
            made.append(client.v1.customers.create(
                params={"email": "race@example.com"},
                options={"idempotency_key": "customer:race-http"}).id)
        except BaseException as error:  # surfaced below
            failures.append(error)

    threads = [threading.Thread(target=create) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(made) == 20 and len(set(made)) == 1
    assert [c["id"] for c in sandbox.store.all("customer")] == made[:1]


def _control(server: SandboxServer, method: str, payload: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(f"{server.url}/_sandbox/faults", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_control_endpoint_sets_reads_and_clears_faults(sandbox: Sandbox,
                                                       server: SandboxServer) -> None:
    status, body = _control(server, "POST", {"error_rate": 1, "paths": ["/v1/customers"]})
    assert status == 200 and body["config"]["error_rate"] == 1.0 and body["active"]
    client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": server.url},
                                 max_network_retries=0)
    with pytest.raises(stripe.APIError):
        client.v1.customers.list()
    assert _control(server, "GET")[1]["stats"]["errors"] == 1

    status, body = _control(server, "POST", {"error_rat": 1})
    assert status == 400 and "error_rat" in body["error"]
    status, body = _control(server, "DELETE")
    assert status == 200 and not body["active"]
    assert client.v1.customers.list().data == []


def test_command_line_flags_configure_faults_and_delivery(sandbox: Sandbox) -> None:
    args = build_parser().parse_args([
        "--rate-limit", "test", "--fault-500", "0.1", "--fault-drop", "0.05",
        "--fault-latency-ms", "30", "--fault-path", "/v1/invoices", "--fault-seed", "3",
        "--webhook-duplicate", "--webhook-shuffle", "2", "--webhook-retry-base", "0.5",
    ])
    configure(sandbox, args)
    config = sandbox.faults.config
    assert (config.rate_limit, config.error_rate, config.drop_rate, config.latency_ms) \
        == (25.0, 0.1, 0.05, 30)
    assert config.paths == ("/v1/invoices",) and config.seed == 3
    delivery = sandbox.webhooks.config
    assert delivery.duplicate and delivery.shuffle_seconds == 2.0
    assert delivery.retry_base_seconds == 0.5
    assert build_parser().parse_args(["--rate-limit", "live"]).rate_limit == 100.0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--fault-500", "2"])
