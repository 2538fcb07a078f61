"""The console's operations and review views over TestClient: SLO tiles with a breach, the
subscription drifts a real reconciliation (run from the console, through the job runner) found
in the sandbox, and the invoice review queue, whose approve finalizes the draft in Stripe."""

from __future__ import annotations

import re
from typing import Any

import stripe
from fastapi.testclient import TestClient

from meterbill.adapters.db.reconciliation import DriftRepository, DriftRow
from meterbill.bootstrap import Container
from meterbill.entrypoints.api import create_app
from meterbill.services.console.operations import DRIFTS_PER_PAGE
from stripe_sandbox import Sandbox
from tests.meterbill.invoices.conftest import month  # noqa: F401  (the fixture, here too)
from tests.meterbill.invoices.month import Month, hold_one

from .test_console import login, page_csrf


def _tile(html: str, name: str) -> str:
    found = re.search(rf'<div class="tile slo ([a-z-]+)" id="slo-{name}">(.*?)</div>', html,
                      re.S)
    assert found is not None, f"no tile for {name}"
    return f"{found.group(1)} {found.group(2)}"


def _stranger(client: stripe.StripeClient) -> str:
    """A subscription made in Stripe for a customer no tenant has: a drift no run can fix."""
    customer = client.v1.customers.create(params={"email": "stranger@example.test"})
    price = client.v1.prices.list(params={"lookup_keys": ["meterbill_starter_base_monthly"]})
    return client.v1.subscriptions.create(params={
        "customer": customer.id, "items": [{"price": price.data[0].id}],
        "payment_behavior": "default_incomplete"}).id


def test_reconcile_now_shows_both_values_and_the_slo_breach(
        api: TestClient, subscribed: dict[str, Any], container: Container,
        stripe_client: stripe.StripeClient) -> None:
    tenant, ours = subscribed["tenant_id"], subscribed["id"]
    stripe_client.v1.subscriptions.cancel(ours)  # in Stripe's dashboard: meterbill not told
    stranger = _stranger(stripe_client)
    login(api)
    before = api.get("/admin/operations").text
    assert "No subscription drift recorded" in before
    assert "slo-ok" in _tile(before, "drifts_open")

    # Without the form's token nothing runs.
    for data in ({}, {"csrf_token": "forged"}):
        refused = api.post("/admin/operations/reconcile", data=data, follow_redirects=False)
        assert refused.status_code == 403
    assert container.subscription_reconcile.drifts() == []
    assert container.jobs.history("subscription-reconcile") == []

    token = page_csrf(api, "/admin/operations")
    dry = api.post("/admin/operations/reconcile", data={"csrf_token": token, "dry_run": "1"})
    assert dry.status_code == 200
    table = dry.text[dry.text.index('id="dry-run-drifts"'):]
    assert "Nothing was changed or recorded" in dry.text
    assert re.search(rf"{tenant}</a></td><td>{ours}</td><td>trialing</td><td>canceled</td>",
                     table)
    assert container.subscription_reconcile.drifts() == []  # a dry run records nothing
    assert container.tenants.get(tenant).status == "trialing"
    assert container.jobs.history("subscription-reconcile") == []

    done = api.post("/admin/operations/reconcile", data={"csrf_token": token})
    assert done.status_code == 200
    assert "2 drift(s) found, 1 fixed" in done.text
    [run] = container.jobs.history("subscription-reconcile")  # recorded by the job runner
    assert run.outcome == "ok" and run.counts["drifts"] == 2
    drifts = done.text[done.text.index('id="sub-drifts"'):]
    assert re.search(rf"status</td><td><a [^>]+>{tenant}</a></td><td>{ours}</td>"
                     r"<td>trialing</td><td>canceled</td><td>our copy set to Stripe&#39;s", drifts)
    assert f'<code title="{run_id(container)}">' in drifts
    assert re.search(rf'<tr class="unfixed">.*?unknown subscription</td><td>none</td>'
                     rf"<td>{stranger}</td>.*?needs you:", drifts, re.S)
    assert container.tenants.get(tenant).status == "canceled"

    # The unfixed drift breaches `drifts_open`; once slo-check keeps the state, since when.
    assert container.jobs.run("slo-check").outcome == "ok"
    for path in ("/admin", "/admin/operations"):
        tile = _tile(api.get(path).text, "drifts_open")
        assert "slo-breach" in tile and "BREACH" in tile, path
        assert "objective &lt;= 0 count over 30d" in tile and "in breach since" in tile
    overview = api.get("/admin").text
    assert "1 in breach" in overview
    assert "slo-ok" in _tile(overview, "webhook_success") and "OK" in _tile(
        overview, "webhook_success")


def run_id(container: Container) -> str:
    return container.subscription_reconcile.drifts()[0].run_id


def test_reconcile_now_without_the_daily_job_runs_it_directly(
        settings: Any, sandbox: Sandbox, stripe_client: stripe.StripeClient) -> None:
    from ..conftest import make_container, make_settings

    container = make_container(make_settings(settings.database_url, reconcile_daily_at=""),
                               sandbox)
    try:
        assert "subscription-reconcile" not in container.jobs.jobs
        stranger = _stranger(stripe_client)
        with TestClient(create_app(container)) as api:
            login(api)
            token = page_csrf(api, "/admin/operations")
            done = api.post("/admin/operations/reconcile", data={"csrf_token": token})
            assert "1 drift(s) found, 0 fixed" in done.text and stranger in done.text
    finally:
        container.close()


def test_drifts_are_paged(api: TestClient, container: Container) -> None:
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 11, 1, tzinfo=UTC)
    with container.db.session() as session:
        for n in range(DRIFTS_PER_PAGE + 3):
            DriftRepository(session).add(DriftRow(
                fingerprint=f"fp-{n}", kind="status", tenant_id=f"pg_{n:02d}",
                subscription_id=f"sub_{n:02d}", local_value="active", stripe_value="canceled",
                found_at=start + timedelta(minutes=n), run_id="r" * 32,
                fix="our copy set to Stripe's", fixed=True))
    login(api)
    first = api.get("/admin/operations").text
    assert "pg_27" in first and "pg_03" in first and "pg_02" not in first
    assert "?drifts=2#drifts" in first and "Newer" not in first
    second = api.get("/admin/operations?drifts=2").text
    assert "pg_02" in second and "pg_00" in second and "pg_03" not in second
    assert "?drifts=1#drifts" in second and "?drifts=3" not in second
    assert "No drift on this page" in api.get("/admin/operations?drifts=9").text


def test_the_review_queue_shows_both_versions_and_approve_finalizes(
        month: Month, container: Container) -> None:  # noqa: F811
    verified, held = hold_one(month)
    with TestClient(create_app(container)) as api:
        login(api)
        queue = api.get("/admin/invoices")
        assert queue.status_code == 200
        assert 'href="/admin/invoices" aria-current="page"' in queue.text
        assert f'id="review-{held}"' in queue.text and verified not in queue.text
        assert ("t-double, Jan: Pro: Stripe 115,000 queries = $12.00 overage; meterbill "
                "110,000 = $8.00; +5,000") in queue.text
        assert "Stripe&#39;s lines" in queue.text and "meterbill&#39;s lines" in queue.text
        assert "115,000" in queue.text and "110,000" in queue.text  # each side's usage line
        assert "$111.00" in queue.text and "$107.00" in queue.text and "$4.00" in queue.text
        assert re.search(r'id="held-count">1<', queue.text)
        everything = api.get("/admin/invoices?status=all").text
        assert f'id="review-{verified}"' in everything
        wrong = api.get("/admin/invoices?status=sent").text
        assert "There is no status &#39;sent&#39;; choose one of verified, held" in wrong

        tenant_page = api.get("/admin/tenants/t-double").text
        assert "Held for review (1)" in tenant_page and f'id="review-{held}"' in tenant_page
        assert "Held for review" not in api.get("/admin/tenants/t-ok").text

        # No token: refused, and the draft stays a held draft.
        refused = api.post(f"/admin/invoices/{held}/approve",
                           data={"reason": "the usage was real"}, follow_redirects=False)
        assert refused.status_code == 403
        assert month.client.v1.invoices.retrieve(held).status == "draft"
        token = page_csrf(api, "/admin/invoices")
        # No reason: said, nothing done.
        blank = api.post(f"/admin/invoices/{held}/approve",
                         data={"csrf_token": token, "reason": " "})
        assert "Say why" in blank.text
        assert container.invoice_review.get(held).status == "held"
        bad = api.post(f"/admin/invoices/{held}/correct",
                       data={"csrf_token": token, "reason": "x", "amount_cents": "4.00"})
        assert "whole cents" in bad.text
        assert month.client.v1.invoices.retrieve(held).status == "draft"

        approved = api.post(f"/admin/invoices/{held}/approve",
                            data={"csrf_token": token, "reason": "the 5,000 were real",
                                  "back": "/admin/tenants/t-double"})
        assert approved.status_code == 200
        assert approved.url.path == "/admin/tenants/t-double"  # back where it was pressed
        assert f"Invoice {held} approved: Stripe finalizes and collects it." in approved.text
        assert "Held for review" not in approved.text
    assert month.client.v1.invoices.retrieve(held).status in ("open", "paid")
    item = container.invoice_review.get(held)
    assert (item.status, item.decided_by, item.decision_reason) == (
        "approved", "admin", "the 5,000 were real")
    month.deliver()
    assert month.charged("t-double") == [9900, 11100]  # Stripe's amount, as drafted


def test_correct_from_the_console_is_recorded_as_the_logged_in_user(
        month: Month, container: Container) -> None:  # noqa: F811
    from meterbill.domain.passwords import hash_password
    from meterbill.entrypoints.api.console.auth import parse_admin_users

    _, held = hold_one(month)
    app = create_app(container)
    app.state.console_auth.users = parse_admin_users(
        f"alice:{hash_password('correct horse', iterations=1000)}")
    with TestClient(app) as api:
        assert login(api, "correct horse", user="alice").status_code == 303
        token = page_csrf(api, "/admin/invoices")
        done = api.post(f"/admin/invoices/{held}/correct", data={
            "csrf_token": token, "reason": "test traffic sent by hand",
            "description": "Usage correction: 5,000 test queries removed"})
        assert f"Invoice {held} corrected" in done.text
        assert "No invoice is held" in done.text
    item = container.invoice_review.get(held)
    assert (item.status, item.decided_by, item.correction_cents) == ("corrected", "alice", -400)
    lines = month.client.v1.invoices.retrieve(held).lines.data
    assert [line.amount for line in lines
            if line.description == "Usage correction: 5,000 test queries removed"] == [-400]
    month.deliver()
    assert month.charged("t-double") == [9900, 10700]  # meterbill's total
