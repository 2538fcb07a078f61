"""Invoice verification's cost per draft at 1,000 invoices on one renewal date, against the draft
window (Stripe finalizes a draft about an hour after it is made).

Set-up (not timed): meterbill on a SQLite file and an in-memory DuckDB store, the in-process
sandbox with the catalog synced, N tenants subscribed to Pro through meterbill's subscription
service on one test clock, a month of usage per tenant in the store and the same total on
Stripe's meter, and for 3% of the tenants 5,000 queries more sent straight to the meter (double
counting, so those drafts are held). The clock then moves just past the renewal: N drafts.

Timed: `InvoiceVerifier.check` for every draft, one after another, as the `invoice.created`
handler calls it (after the flush, which is the usage sync's cost and not counted here).
Counted per draft: Stripe requests (reads and writes, by path), usage-store queries and SQL
statements; measured: milliseconds of meterbill's own work per draft (the in-process sandbox
answers in microseconds, so this is meterbill's CPU and database time).

The target: every draft verified well inside the hour at Stripe's test-mode rate of 25 read
requests per second. The time that rate sets is reads / 25 per second (plus the measured work);
its ratio to 3,600 s must stay far below 1.

Run: `python bench/bench_invoice_verify.py [--invoices 1000]`; `--quick` is 200.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import stripe
from sqlalchemy import event

from meterbill.bootstrap import Container, build, invoice_parts
from meterbill.config import Settings
from meterbill.domain.usage import UsageEvent
from stripe_sandbox import Sandbox, SandboxConfig, SandboxHTTPClient

START = datetime(2026, 1, 1, tzinfo=UTC)
RENEWAL = datetime(2026, 2, 1, tzinfo=UTC)
WINDOW_SECONDS = 3600.0  # Stripe's draft hour
READS_PER_SECOND = 25.0  # Stripe's test-mode read rate
HELD_SHARE = 0.03
# An object id in a path (cus_..., in_..., mtr_test_...), counted as {id}.
OBJECT_ID = re.compile(r"^[a-z]+_(test_)?(?=[A-Za-z0-9]*[A-Z0-9])[A-Za-z0-9]+$")


class CountingClient(SandboxHTTPClient):
    """The in-process sandbox client, counting requests by method and path."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(sandbox)
        self.requests: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()

    def request(self, method: str, url: str, headers: Any, post_data: Any = None, *,
                _usage: Any = None) -> Any:
        shape = "/".join("{id}" if OBJECT_ID.match(part) else part
                         for part in urlsplit(url).path.split("/"))
        with self.lock:
            self.requests[(method.upper(), shape)] += 1
        return super().request(method, url, headers, post_data, _usage=_usage)


class CountingStore:
    """The usage store, counting the queries verification makes."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.queries = 0

    def total(self, *args: Any, **kwargs: Any) -> int:
        self.queries += 1
        return int(self.store.total(*args, **kwargs))


def _setup(n: int, folder: Path) -> tuple[Container, Sandbox, CountingClient, list[str]]:
    sandbox = Sandbox(SandboxConfig())
    counting = CountingClient(sandbox)
    settings = Settings(_env_file=None, stripe_secret_key=None,  # type: ignore[call-arg]
                        database_url=f"sqlite:///{folder / 'bench.db'}",
                        usage_store_url="duckdb:///:memory:", meterbill_api_token="bench-token",
                        stripe_max_network_retries=0)
    container = build(settings, stripe_http_client=counting)
    container.upgrade_db()
    container.catalog_sync.sync()
    client = stripe.StripeClient("sk_test_bench", http_client=SandboxHTTPClient(sandbox),
                                 max_network_retries=0)
    clock = client.v1.test_helpers.test_clocks.create(
        params={"frozen_time": int(START.timestamp())})
    from meterbill.adapters.db.repositories import TenantRepository

    customers = []
    for i in range(n):
        tenant = f"t-{i:05d}"
        customer = client.v1.customers.create(params={
            "email": f"{tenant}@example.com", "test_clock": clock.id,
            "metadata": {"tenant_id": tenant}})
        with container.db.session() as session:
            TenantRepository(session).claim_customer(tenant, f"{tenant}@example.com", None,
                                                     customer.id)
        container.subscriptions.create(tenant, customer.id, "pro", trial_days=0,
                                       payment_method_id="pm_card_visa")
        customers.append(customer.id)
        if (i + 1) % 200 == 0:
            print(f"  subscribed {i + 1:,}/{n:,}", file=sys.stderr, flush=True)
    client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": int((RENEWAL - timedelta(days=2)).timestamp())})
    events = []
    for i, customer_id in enumerate(customers):
        used = 90_000 + 97 * i
        at = RENEWAL - timedelta(days=5)
        events.append(UsageEvent(event_id=f"u-{i}", tenant_id=f"t-{i:05d}", metric="queries",
                                 quantity=used, occurred_at=at, ingested_at=at))
        client.v1.billing.meter_events.create(params={
            "event_name": "queries", "timestamp": int(at.timestamp()),
            "payload": {"stripe_customer_id": customer_id, "value": str(used)}})
        if i % round(1 / HELD_SHARE) == 0:  # double counting: held
            client.v1.billing.meter_events.create(params={
                "event_name": "queries", "timestamp": int(at.timestamp()),
                "payload": {"stripe_customer_id": customer_id, "value": "5000"}})
    container.usage_store.insert(events)
    client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": int((RENEWAL + timedelta(minutes=5)).timestamp())})
    drafts = [inv.id for inv in client.v1.invoices.list(
        params={"status": "draft", "limit": 100}).auto_paging_iter()]
    return container, sandbox, counting, drafts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invoices", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="200 invoices")
    args = parser.parse_args()
    n = 200 if args.quick else args.invoices
    with tempfile.TemporaryDirectory() as tmp:
        print(f"set-up: {n:,} Pro subscriptions on one test clock, a month of usage",
              file=sys.stderr, flush=True)
        began = time.perf_counter()
        container, _, counting, drafts = _setup(n, Path(tmp))
        print(f"set-up took {time.perf_counter() - began:.1f} s; {len(drafts):,} drafts",
              file=sys.stderr, flush=True)
        assert len(drafts) == n, f"expected {n} drafts, found {len(drafts)}"
        verifier = invoice_parts.invoice_verifier(container)
        store = CountingStore(container.usage_store)
        verifier.store = lambda: store  # type: ignore[assignment, return-value]
        statements = Counter[str]()

        @event.listens_for(container.db.engine, "before_cursor_execute")
        def _count(conn: Any, cursor: Any, sql: str, *rest: Any) -> None:
            statements[sql.split()[0].upper()] += 1

        counting.requests.clear()
        outcomes: Counter[str] = Counter()
        began = time.perf_counter()
        for i, invoice_id in enumerate(drafts, 1):
            note = verifier.check(invoice_id)
            outcomes[note.split(":")[0].split()[-1]] += 1
            if i % 200 == 0:
                print(f"  checked {i:,}/{n:,}", file=sys.stderr, flush=True)
        elapsed = time.perf_counter() - began
        container.close()

    reads = sum(c for (method, _), c in counting.requests.items() if method == "GET")
    writes = sum(c for (method, _), c in counting.requests.items() if method != "GET")
    per = reads / n
    at_rate = reads / READS_PER_SECOND + elapsed
    print(f"\n{n:,} drafts checked: {dict(outcomes)}")
    print("Stripe requests by path:")
    for (method, path), count in sorted(counting.requests.items()):
        print(f"  {method:4} {path:55} {count:6,}  ({count / n:.3f} per draft)")
    print(f"SQL statements: {dict(statements)} ({sum(statements.values()) / n:.2f} per draft)")
    print(f"usage-store queries: {store.queries:,} ({store.queries / n:.2f} per draft)")
    print()
    print("| measure | value | target | ratio |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| Stripe reads per draft | {per:.3f} | – | – |")
    print(f"| Stripe writes per draft (holds) | {writes / n:.3f} | – | – |")
    print(f"| meterbill's work per draft | {1000 * elapsed / n:.1f} ms | – | – |")
    print(f"| {n:,} drafts at {READS_PER_SECOND:.0f} reads/s | {at_rate:.0f} s | "
          f"< {WINDOW_SECONDS:.0f} s (the draft hour) | {at_rate / WINDOW_SECONDS:.3f}× |")
    return 0 if at_rate < WINDOW_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
