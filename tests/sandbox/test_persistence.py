"""`--data FILE`: state survives a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
import stripe

from stripe_sandbox import Sandbox, SandboxConfig, SandboxHTTPClient, persistence
from stripe_sandbox.persistence import PersistenceError, attach, register_state


def _client(sandbox: Sandbox) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox),
                               max_network_retries=0)


def _restarted(path: Path) -> Sandbox:
    sandbox = Sandbox(SandboxConfig())
    attach(sandbox, path, debounce_seconds=0, at_exit=False)
    return sandbox


def test_objects_events_endpoints_and_keys_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first = _restarted(path)
    client = _client(first)
    customer = client.v1.customers.create(params={"email": "kept@example.com"},
                                          options={"idempotency_key": "customer:kept"})
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]})
    assert path.exists() and first.persistence.saves >= 2

    second = _restarted(path)
    again = _client(second)
    assert again.v1.customers.retrieve(customer.id).email == "kept@example.com"
    assert [e.type for e in again.v1.events.list().data] == ["customer.created"]
    assert second.store.get("webhook_endpoint", endpoint.id)["_secret"] == endpoint.secret
    replay = again.v1.customers.create(params={"email": "kept@example.com"},
                                       options={"idempotency_key": "customer:kept"})
    assert replay.id == customer.id
    assert replay.last_response.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(stripe.IdempotencyError):
        again.v1.customers.create(params={"email": "other@example.com"},
                                  options={"idempotency_key": "customer:kept"})
    assert second.webhooks.sandbox is second  # delivery resumes for the saved endpoints


def test_reads_do_not_save_but_writes_do(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    sandbox = _restarted(path)
    client = _client(sandbox)
    client.v1.customers.list()
    assert not path.exists()
    client.v1.customers.create(params={"email": "w@example.com"})
    saved = json.loads(path.read_text())
    assert [c["email"] for c in saved["store"]["customer"].values()] == ["w@example.com"]


def test_debounced_saves_are_flushed_at_close(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    sandbox = Sandbox(SandboxConfig())
    keeper = attach(sandbox, path, debounce_seconds=60, at_exit=False)
    _client(sandbox).v1.customers.create(params={"email": "late@example.com"})
    assert not path.exists()  # the debounce holds the save back
    keeper.close()
    assert "late@example.com" in path.read_text()


def test_decimals_and_registered_state_round_trip(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    monkeypatch.setattr(persistence, "_EXTRA_STATE", {})
    register_state(
        "test_persistence.marker",
        lambda sandbox: getattr(sandbox, "marker", None),
        lambda sandbox, value: setattr(sandbox, "marker", value),
    )
    sandbox = Sandbox(SandboxConfig())
    keeper = attach(sandbox, path, debounce_seconds=0, at_exit=False)
    sandbox.store.put({"id": "price_dec", "object": "price",
                       "_unit_amount_decimal": Decimal("0.125")})
    sandbox.marker = {"seen": ["a"]}  # type: ignore[attr-defined]
    keeper.save()

    loaded = _restarted(path)
    assert loaded.store.get("price", "price_dec")["_unit_amount_decimal"] == Decimal("0.125")
    assert loaded.marker == {"seen": ["a"]}  # type: ignore[attr-defined]


def test_a_file_that_is_not_sandbox_state_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(PersistenceError, match="not valid JSON"):
        _restarted(broken)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something/9"}))
    with pytest.raises(PersistenceError, match="not a stripe_sandbox data file"):
        _restarted(other)


def _start(path: Path) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "stripe_sandbox", "--port", "0", "--data", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("stripe_sandbox listening on "):
            return process, line.split(" on ", 1)[1].strip()
    process.kill()
    raise AssertionError(f"the sandbox did not start: {process.stderr.read()}")  # type: ignore


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_the_server_keeps_state_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "server.json"
    process, url = _start(path)
    try:
        client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": url},
                                     max_network_retries=0)
        customer = client.v1.customers.create(params={"email": "server@example.com"})
    finally:
        _stop(process)

    process, url = _start(path)
    try:
        request = urllib.request.Request(f"{url}/v1/customers/{customer.id}",
                                         headers={"Authorization": "Bearer sk_test_x"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert json.loads(answer.read())["email"] == "server@example.com"
    finally:
        _stop(process)


def test_a_restart_on_another_port_moves_the_hosted_invoice_links(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first = _restarted(path)
    first.set_public_url("http://127.0.0.1:40001")
    client = _client(first)
    customer = client.v1.customers.create(params={"email": "links@example.com"})
    client.v1.invoice_items.create(params={"customer": customer.id, "amount": 500,
                                           "currency": "usd"})
    draft = client.v1.invoices.create(params={"customer": customer.id,
                                              "pending_invoice_items_behavior": "include"})
    final = client.v1.invoices.finalize_invoice(draft.id,
                                                options={"idempotency_key": "finalize:1"})
    old = final.hosted_invoice_url
    assert old.startswith("http://127.0.0.1:40001/invoice/")

    second = _restarted(path)  # its old port was taken: it serves on another one
    second.set_public_url("http://127.0.0.1:40002")
    again = _client(second)
    moved = again.v1.invoices.retrieve(final.id)
    assert moved.hosted_invoice_url == old.replace(":40001/", ":40002/")
    assert moved.invoice_pdf == moved.hosted_invoice_url + "/pdf"
    assert second.page("GET", moved.hosted_invoice_url, {}, b"").status == 200
    finalized = [e for e in again.v1.events.list().data if e.type == "invoice.finalized"]
    assert finalized[0].data.object["hosted_invoice_url"] == moved.hosted_invoice_url
    replay = again.v1.invoices.finalize_invoice(draft.id,
                                                options={"idempotency_key": "finalize:1"})
    assert replay.hosted_invoice_url == moved.hosted_invoice_url
