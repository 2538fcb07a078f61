"""The review queue through the HTTP API and the CLI: a held invoice listed with what differs,
shown with both versions, acted on with who and why; bad requests say what to fix; a renewal
finalized before meterbill heard of it is counted as unverified and alerted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from meterbill.adapters.db.notifications import BillingNotice
from meterbill.bootstrap import Container
from meterbill.entrypoints.api.app import create_app
from meterbill.ports.webhooks import parse_event
from stripe_sandbox import faults
from tests.meterbill.cli.conftest import Run
from tests.meterbill.webhooks.conftest import event_body

from .month import RENEWAL, START, Month, hold_one


def test_the_review_queue_over_http(month: Month, container: Container,
                                    auth: dict[str, str]) -> None:
    verified, held = hold_one(month)
    with TestClient(create_app(container)) as api:
        listed = api.get("/invoices/review", headers=auth).json()
        assert [item["invoice_id"] for item in listed["data"]] == [held]
        item = listed["data"][0]
        assert item["summary"] == ("t-double, Jan: Pro: Stripe 115,000 queries = $12.00 "
                                   "overage; meterbill 110,000 = $8.00; +5,000")
        assert (item["stripe_total"], item["expected_total"], item["difference"]) == (
            11100, 10700, 400)
        everything = api.get("/invoices/review", params={"status": "all"}, headers=auth).json()
        assert {i["invoice_id"]: i["status"] for i in everything["data"]} == {
            verified: "verified", held: "held"}
        assert api.get(f"/invoices/review/{held}", headers=auth).json()["expected_lines"]

        # Bad requests name what to fix, and change nothing.
        missing = api.post(f"/invoices/review/{held}/approve", json={"by": "ops"},
                           headers=auth)
        assert missing.status_code == 422 and missing.json()["error"]["field"] == "reason"
        unknown = api.post("/invoices/review/in_nope/approve",
                           json={"by": "ops", "reason": "x"}, headers=auth)
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "invoice_not_checked"
        not_held = api.post(f"/invoices/review/{verified}/void",
                            json={"by": "ops", "reason": "x"}, headers=auth)
        assert not_held.status_code == 409
        assert not_held.json()["error"]["code"] == "invoice_not_held"
        assert api.get("/invoices/review", params={"status": "sent"},
                       headers=auth).status_code == 422

        done = api.post(f"/invoices/review/{held}/correct",
                        json={"by": "ana@example.com", "reason": "test traffic sent by hand"},
                        headers=auth)
        assert done.status_code == 200, done.text
        body = done.json()
        assert (body["status"], body["decided_by"], body["decision_reason"],
                body["correction_cents"]) == ("corrected", "ana@example.com",
                                               "test traffic sent by hand", -400)
        figures = api.get("/invoices/review/figures", headers=auth).json()
        assert figures["counts"]["corrected"] == 1 and figures["counts"]["verified"] == 1
    month.deliver()
    assert month.charged("t-double") == [9900, 10700]


def test_the_review_queue_from_the_cli(month: Month, cli: Run) -> None:
    _, held = hold_one(month)
    listed = cli("invoices", "review", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [i["invoice_id"] for i in json.loads(listed.output)["data"]] == [held]
    people = cli("invoices", "review", "list")
    assert "t-double" in people.output and "+5,000" in people.output
    shown = cli("invoices", "review", "show", held)
    assert "Stripe's lines" in shown.output and "meterbill's lines" in shown.output
    refused = cli("invoices", "review", "approve", held, "--by", "ops", "--reason", " ")
    assert refused.exit_code != 0 and "reason" in refused.output
    approved = cli("invoices", "review", "approve", held, "--by", "ops@example.com",
                   "--reason", "the 5,000 were real", "--json")
    assert approved.exit_code == 0, approved.output
    assert json.loads(approved.output)["status"] == "approved"
    month.deliver()
    assert month.charged("t-double") == [9900, 11100]  # Stripe's amount, as drafted
    figures = json.loads(cli("invoices", "review", "figures", "--json").output)
    assert figures["counts"]["approved"] == 1
    assert figures["verified_before_finalization"] == 1.0


def test_a_renewal_finalized_before_meterbill_heard_of_it_is_counted_and_alerted(
        month: Month, container: Container) -> None:
    month.subscribe("t-late", "pro")
    month.usage("t-late", 50_000, START + timedelta(hours=1), RENEWAL - timedelta(days=1))
    month.live_until(RENEWAL - timedelta(hours=3))
    # A webhook backlog: meterbill hears nothing until after the draft hour.
    month.world.advance(RENEWAL + timedelta(hours=3))
    month.deliver()
    item = container.invoice_review.list(status="unverified")
    assert [(i.tenant_id, i.stripe_total) for i in item] == [("t-late", 9900)]
    figures = container.invoice_review.figures()
    assert figures.counts["unverified"] == 1 and figures.verified_before_finalization == 0.0
    with container.db.session() as session:
        keys = [n.dedupe_key for n in session.query(BillingNotice)]
    assert f"invoice_unverified:{item[0].invoice_id}" in keys


def test_a_hold_finalized_in_stripes_dashboard_leaves_the_queue(month: Month,
                                                                container: Container) -> None:
    _, held = hold_one(month)
    month.client.v1.invoices.finalize_invoice(held, params={"auto_advance": True})
    assert container.invoice_review.remind() == {"held": 1, "reminded": 0}
    item = container.invoice_review.get(held)
    assert (item.status, item.decided_by) == ("approved", "Stripe (outside meterbill)")
    assert item.decision_reason == "the invoice was made paid in Stripe"
    assert container.invoice_review.list() == []


def test_stripe_failing_during_the_check_is_retried_and_nothing_is_charged_meanwhile(
        month: Month, container: Container) -> None:
    for tenant in ("t-ok", "t-double"):
        month.subscribe(tenant, "pro")
        month.usage(tenant, 110_000, START + timedelta(hours=1), RENEWAL - timedelta(days=1))
    month.live_until(RENEWAL - timedelta(days=3))
    month.client.v1.billing.meter_events.create(params={
        "event_name": "queries", "timestamp": int((RENEWAL - timedelta(days=5)).timestamp()),
        "payload": {"stripe_customer_id": month.world.tenants["t-double"].customer_id,
                    "value": "5000"}})
    month.live_until(RENEWAL - timedelta(hours=1))
    month.world.advance(RENEWAL + timedelta(minutes=10))  # drafted; meterbill not told yet
    draft = month.invoice("t-double").id
    injected = faults.install(month.sandbox)
    injected.configure(error_rate=1.0, paths=(f"/v1/invoices/{draft}",))
    failed = []
    for event in month.sandbox.store.all("event"):
        if event["id"] in month.seen or event["data"]["object"].get("id") != draft:
            continue
        month.seen.add(event["id"])
        receipt = month.hooks.intake.store(parse_event(event_body(event)))
        assert receipt.row_id is not None
        result = month.hooks.processor.process(receipt.row_id)
        failed.append((event["type"], result.outcome, receipt.row_id))
    assert [(kind, outcome) for kind, outcome, _ in failed] == [("invoice.created", "failed")]
    assert container.invoice_review.list(status=None) == []  # nothing recorded half-way
    injected.configure()  # Stripe answers again; the inbox retries the event
    later = datetime.now(UTC) + timedelta(minutes=10)
    month.hooks.processor.clock = lambda: later
    assert month.hooks.processor.process(failed[0][2]).outcome == "handled"
    assert [i.invoice_id for i in container.invoice_review.list()] == [draft]
    month.advance(RENEWAL + timedelta(hours=3))
    invoice = month.invoice("t-double")
    assert (invoice.status, invoice.amount_paid) == ("draft", 0)
