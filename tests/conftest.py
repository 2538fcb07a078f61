"""Fixtures shared by every test: an in-process Stripe sandbox and a client bound to it.

The sandbox's answers and events are checked against Stripe's SDK types as they happen
(`tests/sandbox/sdk_schema/recorder.py`), in meterbill's tests as in the sandbox's own: a test
whose sandbox sent a shape Stripe does not fails, listing the violations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from stripe_sandbox import Sandbox, SandboxConfig, SandboxHTTPClient

from .sandbox.sdk_schema.recorder import SchemaRecorder


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    sandbox = Sandbox(SandboxConfig())
    recorder = SchemaRecorder(sandbox)
    yield sandbox
    if recorder.problems:
        pytest.fail(f"{len(recorder.problems)} answers or events differ from Stripe's types:\n"
                    + "\n".join(dict.fromkeys(recorder.problems)), pytrace=False)


@pytest.fixture
def client(sandbox: Sandbox) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_sandbox", http_client=SandboxHTTPClient(sandbox), max_network_retries=0
    )
