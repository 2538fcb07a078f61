"""Subscription reconciliation against the sandbox: changes made directly in Stripe (as in its
dashboard), with no webhook delivered, are all found and fixed in one run, in one list call
per 100 subscriptions; a second run finds nothing; each drift is recorded and alerted once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import stripe
from sqlalchemy import select

from meterbill.adapters.db.models import Subscription, Tenant
from meterbill.adapters.db.notifications import BillingNotice as Notification
from meterbill.bootstrap import Container, build
from meterbill.config import Settings
from stripe_sandbox import Sandbox, SandboxHTTPClient


class CountingClient(SandboxHTTPClient):
    """The sandbox over stripe-python, counting requests by (method, path)."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(sandbox)
        self.calls: Counter[tuple[str, str]] = Counter()

    def request(self, method: str, url: str, headers: Any, post_data: Any = None,
                *args: Any, **kwargs: Any) -> Any:
        self.calls[(method.upper(), urlsplit(url).path)] += 1
        return super().request(method, url, headers, post_data, *args, **kwargs)


@pytest.fixture
def counted(settings: Settings, sandbox: Sandbox) -> Iterator[tuple[Container, CountingClient]]:
    http = CountingClient(sandbox)
    container = build(settings, stripe_http_client=http)
    container.upgrade_db()
    container.catalog_sync.sync()
    try:
        yield container, http
    finally:
        container.close()


def _subscribe(container: Container, tenant_id: str, plan: str = "starter") -> str:
    tenant = container.customers.ensure_customer(tenant_id, f"{tenant_id}@example.test", None)
    assert tenant.stripe_customer_id is not None
    view = container.subscriptions.create(tenant_id, tenant.stripe_customer_id, plan,
                                          payment_method_id="pm_card_visa", trial_days=0)
    return view.id


def _tenant(container: Container, tenant_id: str) -> Tenant:
    with container.db.session() as session:
        row = session.scalars(select(Tenant).where(Tenant.tenant_id == tenant_id)).one()
        session.expunge(row)
        return row


def _subscription(container: Container, subscription_id: str) -> Subscription:
    with container.db.session() as session:
        row = session.get(Subscription, subscription_id)
        assert row is not None
        session.expunge(row)
        return row


def _alerts(container: Container) -> list[str]:
    with container.db.session() as session:
        return list(session.scalars(select(Notification.dedupe_key)
                                    .where(Notification.kind == "admin_alert")))


def _dashboard_edits(client: stripe.StripeClient, subs: dict[str, str]) -> None:
    """What an operator does in Stripe's dashboard; the sandbox has no webhook endpoint here,
    so meterbill hears of none of it."""
    client.v1.subscriptions.cancel(subs["canceled"])
    prices = {p.lookup_key: p.id for p in client.v1.prices.list(params={
        "lookup_keys": ["meterbill_pro_base_monthly", "meterbill_pro_overage_monthly"]}).data}
    sub = client.v1.subscriptions.retrieve(subs["changed"])
    items = []
    for item in sub["items"].data:
        part = "base" if "_base_" in (item.price.lookup_key or "") else "overage"
        items.append({"id": item.id, "price": prices[f"meterbill_pro_{part}_monthly"]})
    client.v1.subscriptions.update(subs["changed"], params={
        "items": items, "proration_behavior": "none"})  # type: ignore[typeddict-item]
    client.v1.subscriptions.update(subs["ending"], params={"cancel_at_period_end": True})
    customer = client.v1.subscriptions.retrieve(subs["deleted"]).customer
    client.v1.customers.delete(str(customer))


def test_dashboard_changes_found_and_fixed_in_one_run(
        counted: tuple[Container, CountingClient], stripe_client: stripe.StripeClient) -> None:
    container, http = counted
    subs = {name: _subscribe(container, name)
            for name in ("canceled", "changed", "ending", "deleted", "untouched")}
    _dashboard_edits(stripe_client, subs)
    before = _tenant(container, "canceled")
    assert (before.billing_status, before.api_access_enabled) == ("active", True)

    dry = container.subscription_reconcile.run(dry_run=True)
    assert {(d.kind, d.tenant_id) for d in dry.drifts} >= {
        ("status", "canceled"), ("plan", "changed"), ("cancel_at_period_end", "ending"),
        ("status", "deleted"), ("customer_deleted", "deleted")}
    assert _tenant(container, "canceled").billing_status == "active"  # a dry run changes nothing
    assert container.subscription_reconcile.drifts() == [] and _alerts(container) == []

    http.calls.clear()
    report = container.subscription_reconcile.run()
    assert http.calls[("GET", "/v1/subscriptions")] == 1  # five subscriptions: one page
    assert report.stripe_calls == 1 and report.subscriptions == 5
    assert set(http.calls) == {("GET", "/v1/subscriptions")}  # no retrieve per tenant
    found = {(d.kind, d.tenant_id): d for d in report.drifts}
    assert ("status", "canceled") in found and ("plan", "changed") in found
    assert found[("status", "canceled")].local == "active"
    assert found[("status", "canceled")].stripe == "canceled"
    assert (found[("plan", "changed")].local, found[("plan", "changed")].stripe) == (
        "starter", "pro")
    assert found[("cancel_at_period_end", "ending")].stripe == "true"
    assert all(d.fixed for d in report.drifts)
    assert not any(tenant == "untouched" for _, tenant in found)

    canceled = _tenant(container, "canceled")
    assert (canceled.billing_status, canceled.api_access_enabled) == ("canceled", False)
    assert _tenant(container, "changed").current_plan == "pro"
    assert _subscription(container, subs["ending"]).cancel_at_period_end is True
    assert _tenant(container, "ending").api_access_enabled is True  # until the period ends
    deleted = _tenant(container, "deleted")
    assert (deleted.stripe_customer_id, deleted.api_access_enabled) == (None, False)

    recorded = container.subscription_reconcile.drifts()
    assert len(recorded) == len(report.drifts)
    assert recorded[0].found_at >= recorded[-1].found_at  # newest first
    assert {r.run_id for r in recorded} == {report.run_id}
    assert len(_alerts(container)) == len(report.drifts)  # one alert per drift

    again = container.subscription_reconcile.run()
    assert again.drifts == [] and again.stripe_calls == 1
    assert len(_alerts(container)) == len(report.drifts)
    assert container.subscription_reconcile.open_drifts() == 0


def test_gone_and_unknown_subscriptions(counted: tuple[Container, CountingClient],
                                        stripe_client: stripe.StripeClient,
                                        sandbox: Sandbox) -> None:
    container, _ = counted
    gone = _subscribe(container, "gone")
    sandbox.store.delete("subscription", gone)  # Stripe no longer has it at all
    stranger = stripe_client.v1.customers.create(params={"email": "x@example.test"})
    prices = stripe_client.v1.prices.list(params={
        "lookup_keys": ["meterbill_starter_base_monthly"]}).data
    stripe_client.v1.subscriptions.create(params={
        "customer": stranger.id, "items": [{"price": prices[0].id}],
        "payment_behavior": "default_incomplete"})

    report = container.subscription_reconcile.run()
    kinds = {d.kind: d for d in report.drifts}
    assert kinds["subscription_missing"].fixed
    assert _tenant(container, "gone").api_access_enabled is False
    assert not kinds["unknown_subscription"].fixed  # no tenant: the operator decides
    assert container.subscription_reconcile.open_drifts() == 1
    alerts = len(_alerts(container))
    again = container.subscription_reconcile.run()
    assert [d.kind for d in again.drifts] == ["unknown_subscription"]
    assert len(_alerts(container)) == alerts  # alerted once


def test_daily_job_in_the_schedule_table(container: Container) -> None:
    job = container.jobs.job("subscription-reconcile")
    assert job.schedule.describe() == "daily at 02:00 UTC" and job.leader
    run = container.jobs.run("subscription-reconcile")
    assert run.outcome == "ok" and run.counts["drifts"] == 0


def test_the_scheduler_runs_it_at_two_on_a_fake_clock(
        counted: tuple[Container, CountingClient], stripe_client: stripe.StripeClient) -> None:
    from datetime import UTC, datetime

    from meterbill.adapters.tasks.scheduler import InlineScheduler

    container, _ = counted
    sub = _subscribe(container, "nightly")
    stripe_client.v1.subscriptions.cancel(sub)
    job = container.jobs.job("subscription-reconcile")
    reads = iter([datetime(2026, 12, 6, 1, 0, tzinfo=UTC)])  # planned at 01:00 ...
    late = datetime(2026, 12, 6, 2, 0, 1, tzinfo=UTC)  # ... then it is 02:00:01
    scheduler = InlineScheduler([(job.name, job.schedule)], container.jobs.run,
                                clock=lambda: next(reads, late)).start()
    deadline = datetime.now(UTC).timestamp() + 20
    while _tenant(container, "nightly").api_access_enabled:
        assert datetime.now(UTC).timestamp() < deadline, "02:00 came and nothing ran"
    scheduler.stop()
    last = {s.name: s.last_run for s in container.jobs.status()}["subscription-reconcile"]
    assert last is not None and last.counts["kind.status"] == 1


def test_one_list_call_per_hundred_subscriptions(
        counted: tuple[Container, CountingClient], stripe_client: stripe.StripeClient) -> None:
    """205 subscriptions made straight in Stripe (and copied here, as webhooks would have):
    three list calls, no drift."""
    from meterbill.adapters.db.repositories import TenantRepository
    from meterbill.adapters.stripe_records import subscription as record_of
    from meterbill.services.billing.subscriptions import store_subscription

    container, http = counted
    price = stripe_client.v1.prices.list(params={
        "lookup_keys": ["meterbill_starter_base_monthly"]}).data[0].id
    for i in range(205):
        customer = stripe_client.v1.customers.create(params={"email": f"c{i}@example.test"})
        sub = stripe_client.v1.subscriptions.create(params={
            "customer": customer.id, "items": [{"price": price}],
            "payment_behavior": "default_incomplete"})
        with container.db.session() as session:
            tenants = TenantRepository(session)
            tenants.claim_customer(f"t{i}", f"c{i}@example.test", None, customer.id)
            tenant = tenants.get(f"t{i}")
            assert tenant is not None
            store_subscription(session, container.catalog, tenant,
                               record_of(sub.to_dict()), container.access.clock())
    http.calls.clear()
    report = container.subscription_reconcile.run()
    assert (report.subscriptions, report.stripe_calls) == (205, 3)
    assert http.calls[("GET", "/v1/subscriptions")] == 3 and len(http.calls) == 1
    assert report.drifts == []


def test_the_cli_reports_fixes_and_lists(container: Container,
                                         stripe_client: stripe.StripeClient) -> None:
    import json

    from typer.testing import CliRunner

    from meterbill.entrypoints.cli import CliContext, app

    sub = _subscribe(container, "cli")
    stripe_client.v1.subscriptions.update(sub, params={"cancel_at_period_end": True})

    def run(*args: str) -> tuple[int, dict[str, Any]]:
        result = CliRunner().invoke(app, [*args, "--json"], obj=CliContext(
            settings_factory=lambda: container.settings,
            container_factory=lambda _settings: container, close_container=False,
            lasting_sandbox=False))
        return result.exit_code, json.loads(result.stdout)

    code, dry = run("reconcile", "--dry-run")
    assert code == 0 and dry["dry_run"] is True
    assert [(d["kind"], d["fix"]) for d in dry["drifts"]] == [
        ("cancel_at_period_end", "dry run: nothing changed")]
    code, done = run("reconcile")
    assert code == 0 and [d["fixed"] for d in done["drifts"]] == [True]
    code, listed = run("reconcile", "--drifts")
    assert code == 0 and [(d["kind"], d["local"], d["stripe"]) for d in listed["data"]] == [
        ("cancel_at_period_end", "false", "true")]


def test_drifts_are_stamped_with_stripes_time(counted: tuple[Container, CountingClient],
                                              sandbox: Sandbox) -> None:
    """In sandbox mode with test clocks Stripe's time is the clocks' (`stripe_time`), not the
    wall clock: what reconciliation records carries it, as the timeline does."""
    from datetime import UTC, datetime

    container, _ = counted
    clocks_time = datetime(2027, 3, 1, 9, 30, tzinfo=UTC)
    container.stripe_time = lambda: clocks_time  # type: ignore[method-assign]
    gone = _subscribe(container, "gone")
    sandbox.store.delete("subscription", gone)
    [drift] = container.subscription_reconcile.run().drifts
    assert (drift.kind, drift.found_at) == ("subscription_missing", clocks_time)
    assert [d.found_at for d in container.subscription_reconcile.drifts(10, 0)] == [clocks_time]
