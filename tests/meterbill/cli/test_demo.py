"""`meterbill demo` at a small size: a month of billing simulated against a sandbox-mode
server, its end table checked against the sandbox, and every invoice checked against what the
plans and the seeded usage imply, to the cent."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import stripe

from meterbill.config import Settings
from meterbill.domain.plans import load_catalog

from .test_multi_terminal import _free_port, _meterbill, _serve

TENANTS = 8


def _day(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).date().isoformat()


def test_the_demo_month_matches_the_sandbox_to_the_cent(tmp_path: Path, database_url: str) -> None:
    env = {"DATABASE_URL": database_url}  # SQLite, and PostgreSQL when the tests have it
    with _serve(tmp_path, _free_port(), env):
        result = _meterbill(tmp_path, "demo", "--tenants", str(TENANTS), "--json", env=env)
        assert result.returncode == 0, result.stderr + result.stdout
        summary = json.loads(result.stdout)
        again = _meterbill(tmp_path, "demo", "--json", env=env)  # a second run starts nothing
        assert again.returncode == 1 and json.loads(again.stdout)["error"]["code"] == (
            "demo_not_fresh")
        record = Settings(_env_file=None, database_url=database_url).state_file(  # type: ignore[call-arg]
            ".server.json")
        sandbox_url = json.loads((tmp_path / record).read_text())["sandbox_url"]
        client = stripe.StripeClient("sk_test_sandbox", base_addresses={
            "api": sandbox_url, "meter_events": sandbox_url})
        invoices = list(client.v1.invoices.list(params={"limit": 100}).auto_paging_iter())
        prices = {p.id: p.lookup_key for p in
                  client.v1.prices.list(params={"limit": 100}).auto_paging_iter()}
        customers = {c.id: c.metadata["tenant_id"] for c in
                     client.v1.customers.list(params={"limit": 100}).auto_paging_iter()}

    # The end table is the sandbox's own account of the month.
    paid = [i for i in invoices if i.status == "paid"]
    assert summary["invoices"]["paid"] == len(paid) > 0
    assert summary["invoices"]["paid_cents"] == sum(i.amount_paid for i in paid)
    # Invoice verification agrees with every draft of the month, trials' ends included.
    assert not [i.id for i in invoices if i.status == "draft" and i.auto_advance is False]
    finalized = [i for i in invoices if i.status != "draft"]  # void ones were finalized too
    assert summary["invoices"]["finalized_cents"] == sum(i.total for i in finalized)
    assert summary["tenants"] == TENANTS and sum(summary["states"].values()) == TENANTS
    assert {"canceled", "active"} <= set(summary["states"])
    assert summary["invoices"]["payment_failed"] > 0  # declined cards, and their dunning
    assert summary["cancelled_in_stripe"] == "demo_004" and summary["caught"]
    assert summary["duplicates"] > 0 and summary["late"] > 0
    assert 0 < summary["usage_reported"] <= summary["usage_stored"]

    # Each invoice: the plan's base fee, and the overage its meter says from the usage that
    # had arrived when the period ended, to the cent.
    seeded: Counter[tuple[str, str, str]] = Counter(
        {(t, day, arrived): q for t, day, arrived, q in summary["seeded"]})
    catalog = load_catalog(None)
    checked = billed = 0
    for invoice in finalized:
        tenant = customers[invoice.customer]
        for line in invoice.lines.data:
            key = prices[line.pricing.price_details.price]
            plan = catalog.plan_for_lookup_key(key)
            assert plan is not None
            if key == plan.base_lookup_key:  # nothing during a trial
                trial = line.description.startswith("Trial period")
                assert line.amount == (0 if trial else plan.base_amount), (invoice.id, key)
                continue
            start, end = _day(line.period.start), _day(line.period.end)
            # The first invoice bills the period ahead: no usage yet.
            used = 0 if invoice.billing_reason == "subscription_create" else sum(
                q for (t, day, arrived), q in seeded.items()
                if t == tenant and start <= day < end and arrived < end)
            assert line.quantity == used, (invoice.id, tenant, start, end)
            assert line.amount == plan.overage_cost(used), (invoice.id, tenant)
            checked += 1
            billed += used
        assert invoice.total == sum(line.amount for line in invoice.lines.data)
    assert checked > 0 and billed > 0  # renewals bill the seeded usage
