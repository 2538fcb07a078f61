"""Fixtures shared by every test: an in-process Stripe sandbox and a client bound to it."""

from __future__ import annotations

import pytest
import stripe

from stripe_sandbox import Sandbox, SandboxConfig, SandboxHTTPClient


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(SandboxConfig())


@pytest.fixture
def client(sandbox: Sandbox) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_sandbox", http_client=SandboxHTTPClient(sandbox), max_network_retries=0
    )
