"""Entitlement: how fast meterbill answers "what may this tenant use now?".

1,000 tenants on Pro (a third of them in some dunning step, with timeline entries) in SQLite,
and 1,000,000 usage events in a DuckDB file. Answers for random tenants:
1. `EntitlementService.get` with the usage total cached (ENTITLEMENT_USAGE_CACHE_SECONDS=10,
   the default; the cache warm) and with no cache (a DuckDB total on every answer);
2. `GET /tenants/{id}/entitlement` through the real app in-process (FastAPI's TestClient),
   answered in full (200) and as 304 (`If-None-Match` with the ETag), against a bare route on
   the same app and client (TestClient's own cost dominates; the ratio is the figure).

Target: at least 1,000 answers per second from one process with the default cache (a SaaS
asks on every request; more processes scale it out).

Run: `python bench/bench_entitlement.py [--tenants 1000] [--events 1000000] [--n 5000]`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from meterbill.adapters.db.models import Subscription, Tenant
from meterbill.adapters.db.timeline import TimelineEntry
from meterbill.bootstrap import Container, build
from meterbill.config import Settings
from meterbill.domain.usage import UsageEvent
from meterbill.entrypoints.api import create_app

TOKEN = "bench-token-0123456789"
PERIOD_START = datetime(2026, 11, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 12, 1, tzinfo=UTC)
STEPS = ("reminder", "warning", "final_warning", "suspended")


def setup(root: Path, tenants: int, events: int) -> Container:
    settings = Settings(_env_file=None, database_url=f"sqlite:///{root / 'bench.db'}",  # type: ignore[call-arg]
                        usage_store_url=f"duckdb:///{root / 'usage.duckdb'}",
                        meterbill_api_token=SecretStr(TOKEN), stripe_secret_key=None)
    container = build(settings)
    container.upgrade_db()
    now = datetime.now(UTC)
    with container.db.session() as session:
        for i in range(tenants):
            tenant_id = f"tenant_{i:05d}"
            step = STEPS[i % 4] if i % 3 == 0 else None
            session.add(Tenant(
                tenant_id=tenant_id, email=f"t{i}@example.com", stripe_customer_id=f"cus_{i}",
                stripe_subscription_id=f"sub_{i}", current_plan="pro",
                billing_status="suspended" if step == "suspended" else "active",
                payment_failures=STEPS.index(step) + 1 if step else 0,
                rate_limit_multiplier=0.0 if step == "suspended" else
                0.5 if step == "final_warning" else 1.0,
                soft_suspended=step == "final_warning", api_access_enabled=step != "suspended",
                subscription_seq=1, created_at=now, updated_at=now))
            session.flush()
            session.add(Subscription(
                id=f"sub_{i}", tenant_id=tenant_id, customer_id=f"cus_{i}", plan_type="pro",
                status="active", current_period_start=PERIOD_START,
                current_period_end=PERIOD_END, revision=0, cancel_at_period_end=False,
                created_at=now, updated_at=now))
            if step:
                for before, after in zip(("good_standing",) + STEPS, STEPS, strict=False):
                    session.add(TimelineEntry(
                        tenant_id=tenant_id, at=now, from_state=before, to_state=after,
                        step=after, cause="webhook", event_id=f"evt_{i}_{after}",
                        invoice_id=f"in_{i}", failures=STEPS.index(after) + 1, detail="bench"))
                    if after == step:
                        break
    store = container.usage_store
    dice = random.Random(1)
    batch: list[UsageEvent] = []
    seconds = int((PERIOD_END - PERIOD_START).total_seconds())
    for n in range(events):
        batch.append(UsageEvent(f"e{n}", f"tenant_{dice.randrange(tenants):05d}", "queries", 1,
                                PERIOD_START + timedelta(seconds=dice.randrange(seconds)), now))
        if len(batch) == 10_000:
            store.insert(batch)
            batch = []
    store.insert(batch)
    return container


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} ({os.cpu_count()} cores)"


def rate(label: str, n: int, call: Callable[[int], object]) -> float:
    latencies = []
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"  {label:<44} {n / elapsed:>8.0f}/s   p50 {p50:5.2f} ms   p99 {p99:5.2f} ms")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        container = setup(Path(tmp), args.tenants, args.events)
        print(f"setup: {args.tenants} tenants, {args.events:,} usage events "
              f"({time.perf_counter() - t0:.1f} s, not measured)")
        try:
            dice = random.Random(2)
            ids = [f"tenant_{dice.randrange(args.tenants):05d}" for _ in range(args.n)]
            service = container.entitlement
            # Warm: every tenant's total read within the TTL, as in a process that answers
            # each tenant more often than every 10 s (the warm-up itself takes longer than
            # 10 s here, so the TTL is stretched for the measure).
            service.usage.ttl = 3600.0
            for tenant_id in set(ids):
                service.get(tenant_id)
            cached = rate("service, usage total cached (warm)", args.n,
                          lambda i: service.get(ids[i]))
            service.usage.ttl = 0.0
            uncached = rate("service, DuckDB total on every answer", args.n,
                            lambda i: service.get(ids[i]))
            service.usage.ttl = 3600.0
            app = create_app(container)
            app.get("/bare")(lambda: {"ok": True})  # the same stack with nothing behind it
            with TestClient(app) as api:
                headers = {"Authorization": f"Bearer {TOKEN}"}
                bare = rate("GET /bare (the client and app's own cost)", args.n // 2,
                            lambda i: api.get("/bare"))
                etags = {t: api.get(f"/tenants/{t}/entitlement", headers=headers)
                         .headers["ETag"] for t in set(ids)}
                full = rate("GET /entitlement (200)", args.n // 2,
                            lambda i: api.get(f"/tenants/{ids[i]}/entitlement",
                                              headers=headers))
                not_modified = rate("GET /entitlement with If-None-Match (304)", args.n // 2,
                                    lambda i: api.get(f"/tenants/{ids[i]}/entitlement",
                                                      headers={**headers,
                                                               "If-None-Match": etags[ids[i]]}))
            print(f"  cache gain: {cached / uncached:.1f}x; 304 vs 200: "
                  f"{not_modified / full:.2f}x; entitlement vs bare route: {full / bare:.2f}x")
            print(f"  {load_average()}")
            print(f"  target >= 1,000 answers/s (service, cached): {cached:.0f}/s, "
                  f"ratio {cached / 1000:.2f}x; over HTTP in-process {full:.0f}/s, "
                  f"ratio {full / 1000:.2f}x")
        finally:
            container.close()


if __name__ == "__main__":
    main()
