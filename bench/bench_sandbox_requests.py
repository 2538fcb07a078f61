"""Sandbox request throughput: in-process (target ≥ 2,000 req/s) and over HTTP (≥ 500 req/s).

Simple requests are customer create and retrieve through the official stripe-python client,
half and half. Run: `python bench/bench_sandbox_requests.py [--n 2000]`.
"""

from __future__ import annotations

import argparse
import time

import stripe

from stripe_sandbox import Sandbox, SandboxConfig, SandboxHTTPClient
from stripe_sandbox.server import SandboxServer

IN_PROCESS_TARGET = 2000.0
HTTP_TARGET = 500.0


def _run(client: stripe.StripeClient, n: int) -> float:
    """Requests per second for n/2 creates each followed by a retrieve."""
    start = time.perf_counter()
    for i in range(n // 2):
        customer = client.v1.customers.create(params={"email": f"bench{i}@example.com"})
        client.v1.customers.retrieve(customer.id)
    return (n // 2 * 2) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="requests per mode")
    args = parser.parse_args()

    in_process = stripe.StripeClient(
        "sk_test_bench", http_client=SandboxHTTPClient(Sandbox(SandboxConfig()))
    )
    _run(in_process, 100)  # warm up: parameter tables, imports
    rate_in = _run(in_process, args.n)

    server = SandboxServer(Sandbox(SandboxConfig())).start()
    try:
        over_http = stripe.StripeClient(
            "sk_test_bench", base_addresses={"api": server.url}, max_network_retries=0
        )
        _run(over_http, 100)
        rate_http = _run(over_http, args.n)
    finally:
        server.stop()

    print(f"{'mode':<12}{'requests':>10}{'req/s':>10}{'target':>10}{'ratio':>8}")
    for mode, rate, target in (
        ("in-process", rate_in, IN_PROCESS_TARGET),
        ("http", rate_http, HTTP_TARGET),
    ):
        print(f"{mode:<12}{args.n:>10}{rate:>10.0f}{target:>10.0f}{rate / target:>7.2f}x")


if __name__ == "__main__":
    main()
