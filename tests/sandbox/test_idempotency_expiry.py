"""Idempotency keys are replayed for the TTL and forgotten after it, oldest first."""

from __future__ import annotations

import pytest
import stripe

from stripe_sandbox import Sandbox, engine


def test_keys_replay_within_the_ttl_and_expire_after_it(
        sandbox: Sandbox, client: stripe.StripeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_000_000.0]
    monkeypatch.setattr(engine.time, "time", lambda: now[0])
    sandbox.config.idempotency_ttl_seconds = 100

    def create(key: str) -> str:
        return str(client.v1.customers.create(params={"email": "a@example.com"},
                                              options={"idempotency_key": key}).id)

    first = create("k1")
    now[0] += 60
    second = create("k2")
    assert create("k1") == first  # replayed within the TTL
    now[0] += 50  # k1 is 110 s old, k2 50 s
    assert create("k2") == second
    assert list(sandbox.idempotency) == ["k2"]  # k1 expired, dropped from the front
    assert create("k1") != first  # a forgotten key makes a new object
    assert list(sandbox.idempotency) == ["k2", "k1"]
