"""Advancing a test clock one month for 1,000 subscriptions with metered usage (target < 10 s).

Setup (not timed): one test clock, 1,000 customers with a card, each subscribed to a licensed
base price plus a graduated metered overage price on one billing meter, and a few meter events
per customer. Timed: the single `advance` request that moves the clock past the renewal and the
one-hour draft grace, so every subscription renews, drafts its invoice, reads its usage from the
meter, finalizes and is charged. Run: `python bench/bench_test_clock.py [--subscriptions 1000]`.
"""

from __future__ import annotations

import argparse
import time

import stripe

from stripe_sandbox import Sandbox, SandboxConfig, SandboxHTTPClient

TARGET_SECONDS = 10.0
START = 1767225600  # 2026-01-01T00:00:00Z
DAY = 86400


def _setup(client: stripe.StripeClient, n: int) -> str:
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": START})
    product = client.v1.products.create(params={"name": "Pro"})
    meter = client.v1.billing.meters.create(params={
        "display_name": "Queries", "event_name": "bench_queries",
        "default_aggregation": {"formula": "sum"},
    })
    base = client.v1.prices.create(params={
        "product": product.id, "currency": "usd", "unit_amount": 9900,
        "recurring": {"interval": "month"},
    })
    overage = client.v1.prices.create(params={
        "product": product.id, "currency": "usd", "billing_scheme": "tiered",
        "tiers_mode": "graduated",
        "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        "tiers": [{"up_to": 100000, "unit_amount": 0},
                  {"up_to": "inf", "unit_amount_decimal": "0.08"}],
    })
    customers = []
    for i in range(n):
        customer = client.v1.customers.create(params={
            "email": f"tenant{i}@example.com", "test_clock": clock.id,
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        })
        client.v1.subscriptions.create(params={
            "customer": customer.id, "items": [{"price": base.id}, {"price": overage.id}],
        })
        customers.append(customer.id)
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": START + 10 * DAY})
    for i, customer_id in enumerate(customers):
        for j in range(3):
            client.v1.billing.meter_events.create(params={
                "event_name": "bench_queries", "identifier": f"bench-{i}-{j}",
                "payload": {"stripe_customer_id": customer_id, "value": str(40000 + i)},
            })
    return clock.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscriptions", type=int, default=1000)
    args = parser.parse_args()

    sandbox = Sandbox(SandboxConfig())
    client = stripe.StripeClient("sk_test_bench", http_client=SandboxHTTPClient(sandbox),
                                 max_network_retries=0)
    setup_start = time.perf_counter()
    clock_id = _setup(client, args.subscriptions)
    setup_seconds = time.perf_counter() - setup_start

    # 2026-02-01 is the renewal; two hours later every draft has been finalized and charged.
    target = START + 31 * DAY + 2 * 3600
    start = time.perf_counter()
    client.v1.test_helpers.test_clocks.advance(clock_id, params={"frozen_time": target})
    elapsed = time.perf_counter() - start

    paid = sum(1 for inv in sandbox.store.all("invoice")
               if inv["billing_reason"] == "subscription_cycle" and inv["status"] == "paid")
    print(f"setup: {args.subscriptions} subscriptions in {setup_seconds:.1f} s (not timed)")
    print(f"{'measure':<34}{'seconds':>9}{'target':>9}{'ratio':>8}")
    print(f"{'advance one month':<34}{elapsed:>9.2f}{TARGET_SECONDS:>9.1f}"
          f"{elapsed / TARGET_SECONDS:>7.2f}x")
    print(f"renewal invoices paid: {paid} of {args.subscriptions}")


if __name__ == "__main__":
    main()
