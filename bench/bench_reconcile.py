"""Subscription reconciliation against the sandbox over HTTP at Stripe's test-mode read rate.

The sandbox runs in a child process, served over HTTP (`SandboxServer`), and holds N
subscriptions (N/10 for the memory comparison, in a second child) made through stripe-python
(a customer each, the Pro plan's base price, no payment asked: they stay `incomplete`, which
is enough to list). meterbill's database gets a tenant
and a subscription row for each, copied from Stripe's, so a run finds no drift. Then the
sandbox's rate limit of R requests/s is switched on for every API path and
`SubscriptionReconciler.run` reconciles as `meterbill reconcile` would, paced at R.

Measures:
1. Stripe calls for N subscriptions: target ceil(N/100) (one list call per 100; the seeds'
   way is one retrieve per tenant, N).
2. Time against the floor the rate sets, calls / R; target <= 1.2x. The same run unpaced says
   how much of the time is the pacing and how much each list call's own latency.
3. Peak memory of `run()` (tracemalloc) for N/10 and N subscriptions, unpaced; target flat.

Run: `python bench/bench_reconcile.py [--subscriptions 10000] [--rate 25]`; `--quick` is 2,000.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_sandbox_harness import SandboxChild
from sqlalchemy import insert

from meterbill.adapters.db.models import Subscription, Tenant
from meterbill.bootstrap import Container, build
from meterbill.config import Settings

RATIO_TARGET = 1.2


def _subscriptions(client: Any, total: int) -> list[Any]:
    product = client.v1.products.create(params={"name": "Pro"})
    price = client.v1.prices.create(params={
        "product": product.id, "currency": "usd", "unit_amount": 9900,
        "recurring": {"interval": "month"}, "lookup_key": "meterbill_pro_base_monthly"})
    rows = []
    started = time.perf_counter()
    for i in range(total):
        customer = client.v1.customers.create(params={"email": f"t{i}@example.com"})
        sub = client.v1.subscriptions.create(params={
            "customer": customer.id, "items": [{"price": price.id}],
            "payment_behavior": "default_incomplete"})
        item = sub["items"].data[0]
        rows.append((sub.id, customer.id, sub.status, item.current_period_start,
                     item.current_period_end))
        if (i + 1) % 1000 == 0:
            print(f"  sandbox: {i + 1:,} / {total:,} subscriptions "
                  f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    return rows


class CountedPages:
    """The gateway's list, counting its calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def subscription_pages(self, page_size: int = 100) -> Iterator[Any]:
        for page in self.inner.subscription_pages(page_size):
            self.calls += 1
            yield page


def make_container(workdir: Path, url: str, rate: float, name: str) -> Container:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, stripe_secret_key=None, stripe_api_base=url,
        database_url=f"sqlite:///{workdir / f'{name}.db'}",
        usage_store_url=f"duckdb:///{workdir / f'{name}.duckdb'}",
        reconcile_requests_per_second=rate, stripe_max_network_retries=5, log_level="WARNING")
    container = build(settings)
    container.upgrade_db()
    return container


def populate(container: Container, rows: list[tuple[Any, ...]], prefix: str) -> None:
    """A tenant and a subscription row per Stripe subscription, agreeing with it."""
    now = datetime.now(UTC)

    def stamp(value: int) -> datetime:
        return datetime.fromtimestamp(value, UTC)

    tenants, subs = [], []
    for i, (sub_id, customer, status, start, end) in enumerate(rows):
        tenant_id = f"{prefix}{i:05d}"
        tenants.append({"tenant_id": tenant_id, "stripe_customer_id": customer,
                        "stripe_subscription_id": sub_id, "current_plan": "pro",
                        "billing_status": status, "payment_failures": 0,
                        "rate_limit_multiplier": 0.5, "soft_suspended": True,
                        "api_access_enabled": True, "subscription_seq": 1, "created_at": now,
                        "updated_at": now})
        subs.append({"id": sub_id, "tenant_id": tenant_id, "customer_id": customer,
                     "plan_type": "pro", "status": status, "revision": 0,
                     "cancel_at_period_end": False, "current_period_start": stamp(start),
                     "current_period_end": stamp(end), "created_at": now, "updated_at": now})
    with container.db.session() as session:
        session.execute(insert(Tenant), tenants)
        session.execute(insert(Subscription), subs)


def reconciler(container: Container) -> tuple[Any, CountedPages]:
    service = container.subscription_reconcile
    counted = CountedPages(service.stripe)
    service.stripe = counted
    return service, counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=25.0, help="reads/s (Stripe test mode)")
    parser.add_argument("--quick", action="store_true", help="2,000 subscriptions")
    args = parser.parse_args()
    n = 2_000 if args.quick else args.subscriptions
    small = max(1, n // 10)
    print(f"making {n:,} subscriptions in the sandbox ...", file=sys.stderr, flush=True)
    child = SandboxChild(_subscriptions, n)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            # The small run gets a sandbox of its own size: it lists N/10 subscriptions.
            big = make_container(workdir, child.url, args.rate, "big")
            populate(big, child.data, "t")
            child.faults(rate_limit=args.rate)
            service, counted = reconciler(big)
            started = time.perf_counter()
            report = service.run(progress=lambda done: print(
                f"  compared {done:,}", file=sys.stderr, flush=True) if done % 2000 == 0
                else None)
            seconds = time.perf_counter() - started
            limited = child.faults()["stats"].get("rate_limited", 0)
            child.faults(rate_limit="off")
            if report.drifts:
                raise SystemExit(f"expected no drift, found {len(report.drifts)}: "
                                 f"{report.drifts[:3]}")
            # Unpaced: the list calls' own latency.
            fast, _ = reconciler(big)
            fast.pace = None
            started = time.perf_counter()
            fast.run()
            unpaced = time.perf_counter() - started
            # Memory: N against N/10 subscriptions, unpaced.
            big_service, _ = reconciler(big)
            big_service.pace = None
            big_mib = peak(big_service)
            big.close()
    finally:
        child.close()
    small_child = SandboxChild(_subscriptions, small)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            box = make_container(Path(tmp), small_child.url, 0.0, "small")
            populate(box, small_child.data, "s")
            small_service, _ = reconciler(box)
            small_mib = peak(small_service)
            box.close()
    finally:
        small_child.close()

    listed = n
    target = math.ceil(listed / 100)
    floor = counted.calls / args.rate
    print(f"subscriptions in Stripe {listed:,}; read limit R = {args.rate:g}/s, paced at R")
    print(f"{'measure':<46}{'value':>10}{'target':>10}{'ratio':>8}")
    print(f"{'Stripe calls (list, 100 a page)':<46}{counted.calls:>10}{target:>10}"
          f"{counted.calls / target:>7.2f}x")
    print(f"{'seeds way: one retrieve per tenant':<46}{listed:>10}")
    print(f"{'429 answers from the sandbox':<46}{limited:>10}")
    print(f"{f'time, s (floor calls/R = {floor:.1f} s)':<46}{seconds:>10.1f}"
          f"{RATIO_TARGET:>9.1f}x{seconds / floor:>7.2f}x")
    print(f"{'time unpaced, s (the list calls alone)':<46}{unpaced:>10.1f}")
    print(f"{f'peak memory of run(), MiB: {small:,} subscriptions':<46}{small_mib:>10.1f}")
    print(f"{f'peak memory of run(), MiB: {listed:,} subscriptions':<46}{big_mib:>10.1f}"
          f"{'flat':>10}{big_mib / small_mib:>7.2f}x")


def peak(service: Any) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    service.run()
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (top - before) / 2**20


if __name__ == "__main__":
    main()
