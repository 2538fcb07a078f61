"""Usage sync to Stripe's meters: calls per tenant-day, time against a rate limit, memory.

The sandbox runs in a child process, served over HTTP (`SandboxServer`), so it does not share
the sync's interpreter. Set-up goes straight to its engine (customers) and to meterbill's
database and DuckDB store (tenants, subscriptions, one day of usage per tenant), then the
sandbox's rate limit of R requests/s is switched on for every API path, and
`UsageSyncService.sync` runs as `meterbill usage sync` would (settings: R requests/s of pacing,
8 tenants in parallel, the 429 backoff).

Measures:
1. Stripe API calls per tenant-day: requests the sync made (429s counted apart) / tenant-days;
   target 1 (the seeds' code makes 2+).
2. Time for N tenants × 1 day as a ratio of the floor the limit sets, N / R; target ≤ 1.2×.
3. Peak memory of `sync()` (tracemalloc) for N/10 and N tenants, no rate limit (it would only
   stretch the run); target: flat. Tenants go through in chunks of 500 (two in flight) and a
   report keeps the details of at most 1,000 tenants, so memory levels off from about 1,000
   tenants on: `--quick` (200 against 2,000) shows the climb, the default the plateau.

Run: `python bench/bench_usage_sync.py [--tenants 10000] [--rate 200] [--no-pacing]`;
`--quick` is 2,000 tenants (and 200 for the small memory run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_sandbox_harness import SandboxChild
from sqlalchemy import insert

from meterbill.adapters.db.models import Subscription, Tenant
from meterbill.adapters.db.usage_ledger import UsageLedgerEntry
from meterbill.bootstrap import Container, build
from meterbill.config import Settings
from meterbill.domain.usage import UsageEvent

CALLS_TARGET = 1.0
RATIO_TARGET = 1.2


# --- the sandbox, in a child process ------------------------------------------------------------


def _customers(client: Any, tenants: int) -> list[str]:
    ids = [client.v1.customers.create(params={"email": f"t{i}@example.com"}).id
           for i in range(tenants)]
    return ids


# --- meterbill's side ---------------------------------------------------------------------------


def make_container(workdir: Path, url: str, rate: float, name: str) -> Container:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, stripe_secret_key=None, stripe_api_base=url,
        database_url=f"sqlite:///{workdir / f'{name}.db'}",
        usage_store_url=f"duckdb:///{workdir / f'{name}.duckdb'}",
        usage_sync_requests_per_second=rate, usage_sync_concurrency=8,
        usage_sync_max_attempts=20, log_level="WARNING")
    container = build(settings)
    container.upgrade_db()
    container.catalog_sync.sync()
    return container


def populate(container: Container, customers: list[str], prefix: str) -> tuple[int, int]:
    """Tenants with active Pro subscriptions and one day of usage each; (tenants, units)."""
    now = datetime.now(UTC).replace(microsecond=0)
    plan = container.catalog.get("pro")
    overage = container.gateway.prices_by_lookup_key([plan.overage_lookup_key])
    price_id = overage[plan.overage_lookup_key].id
    yesterday_noon = datetime.combine(now.date() - timedelta(days=1), datetime.min.time(),
                                      tzinfo=UTC) + timedelta(hours=12)
    tenants, subscriptions, events = [], [], []
    for i, customer in enumerate(customers):
        tenant_id = f"{prefix}{i:05d}"
        tenants.append({"tenant_id": tenant_id, "stripe_customer_id": customer,
                        "stripe_subscription_id": f"sub_{prefix}{i:05d}", "current_plan": "pro",
                        "billing_status": "active", "payment_failures": 0,
                        "rate_limit_multiplier": 1.0, "soft_suspended": False,
                        "api_access_enabled": True, "subscription_seq": 1, "created_at": now,
                        "updated_at": now})
        subscriptions.append({"id": f"sub_{prefix}{i:05d}", "tenant_id": tenant_id,
                              "customer_id": customer, "plan_type": "pro", "status": "active",
                              "overage_price_id": price_id, "revision": 0,
                              "cancel_at_period_end": False,
                              "current_period_start": now - timedelta(days=10),
                              "current_period_end": now + timedelta(days=20),
                              "created_at": now, "updated_at": now})
        events.append(UsageEvent(f"{tenant_id}-e", tenant_id, "queries", 100 + i % 50,
                                 yesterday_noon, now))
    with container.db.session() as session:
        session.execute(insert(Tenant), tenants)
        session.execute(insert(Subscription), subscriptions)
    container.usage_store.insert(events)
    return len(customers), sum(e.quantity for e in events)


def yesterday() -> Any:
    return datetime.now(UTC).date() - timedelta(days=1)


def timed_sync(container: Container) -> tuple[float, Any]:
    sync = container.usage_sync
    started = time.perf_counter()
    report = sync.sync(days=[yesterday()])
    return time.perf_counter() - started, report


def peak_memory(container: Container) -> tuple[float, int]:
    """(peak MiB allocated during sync(), tenants in its report)."""
    sync = container.usage_sync
    tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    report = sync.sync(days=[yesterday()])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (peak - before) / 2**20, sum(report.counts.values())


def check(container: Container, tenants: int) -> None:
    from sqlalchemy import func, select

    with container.db.session() as session:
        states = dict(session.execute(select(UsageLedgerEntry.state, func.count())
                                      .group_by(UsageLedgerEntry.state)).all())
    if states != {"sent": tenants}:
        raise SystemExit(f"expected {tenants} sent ledger rows, found {states}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0, help="sandbox limit, req/s")
    parser.add_argument("--quick", action="store_true", help="2,000 tenants")
    parser.add_argument("--no-pacing", action="store_true",
                        help="do not pace at R: rely on the 429 backoff alone")
    args = parser.parse_args()
    n = 2_000 if args.quick else args.tenants
    small = max(1, n // 10)

    child = SandboxChild(_customers, n + small)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            # 1 + 2: N tenants against the rate limit, paced at R.
            big = make_container(workdir, child.url, 0.0 if args.no_pacing else args.rate,
                                 "big")
            populate(big, child.data[:n], "t")
            child.faults(rate_limit=args.rate)
            seconds, report = timed_sync(big)
            stats = child.faults()["stats"]
            child.faults(rate_limit="off")
            check(big, n)
            meters = big.usage_sync.meters
            calls = meters.stats.requests - meters.stats.rate_limited  # type: ignore[attr-defined]
            floor = n / args.rate
            # 3: memory, N/10 against N, without the limit.
            small_box = make_container(workdir, child.url, 0.0, "small")
            populate(small_box, child.data[n:], "s")
            small_mib, small_count = peak_memory(small_box)
            with big.db.session() as session:  # the same N tenants again, fresh ledger
                session.query(UsageLedgerEntry).delete()
            big_mib, big_count = peak_memory(big)
            big.close()
            small_box.close()
    finally:
        child.close()

    pacing = "not paced (429 backoff only)" if args.no_pacing else "paced at R"
    print(f"tenant-days {n:,}; rate limit R = {args.rate:g} req/s; sync {pacing}, "
          f"8 tenants in parallel")
    print(f"{'measure':<44}{'value':>12}{'target':>10}{'ratio':>8}")
    per_day = calls / n
    print(f"{'Stripe calls per tenant-day':<44}{per_day:>12.3f}{CALLS_TARGET:>10.1f}"
          f"{per_day / CALLS_TARGET:>7.2f}x")
    limited = f"{meters.stats.rate_limited} / {stats['rate_limited']}"  # type: ignore[attr-defined]
    print(f"{'429 answers (client / sandbox)':<44}{limited:>12}")
    ratio = seconds / floor
    print(f"{f'sync time, s (floor N/R = {floor:.1f} s)':<44}{seconds:>12.1f}"
          f"{RATIO_TARGET:>9.1f}x{ratio:>7.2f}x")
    print(f"{f'peak memory of sync(), MiB: {small_count:,} tenants':<44}{small_mib:>12.1f}")
    print(f"{f'peak memory of sync(), MiB: {big_count:,} tenants':<44}{big_mib:>12.1f}"
          f"{'flat':>10}{big_mib / small_mib:>7.2f}x")
    print(f"sent {report.sent:,} units in {report.calls:,} meter events; statuses "
          f"{report.counts}")
    sys.exit(0)


if __name__ == "__main__":
    main()
