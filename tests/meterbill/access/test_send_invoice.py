"""A tenant billed by email (collection send_invoice, net 10): the invoice is emailed with its
hosted page and due date; unpaid past the due date, Stripe's `invoice.overdue` starts the
policy's [overdue] steps; paid on the hosted page, the tenant is restored with a receipt."""

from __future__ import annotations

import stripe

from meterbill.adapters.db.repositories import TenantRepository
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents
from stripe_sandbox import Sandbox

from ..smtp import SmtpServer
from .conftest import DAY, EMAIL, HOUR, START, TENANT, Month, notices, tenant_row, timeline


def _emailed_month(container: Container, hooks: WebhookComponents,
                   client: stripe.StripeClient, sandbox: Sandbox) -> Month:
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": START})
    customer = client.v1.customers.create(params={
        "email": EMAIL, "name": "Acme Inc.", "test_clock": clock.id,
        "metadata": {"tenant_id": TENANT}})
    with container.db.session() as session:
        TenantRepository(session).claim_customer(TENANT, EMAIL, "Acme Inc.", customer.id)
    view = container.subscriptions.create(TENANT, customer.id, "pro", trial_days=0,
                                          days_until_due=10)
    month = Month(container, hooks, client, sandbox, clock.id, customer.id, view.id)
    month.deliver_new()
    return month


def test_emailed_invoice_overdue_then_paid_on_its_page(
        container: Container, hooks: WebhookComponents, client: stripe.StripeClient,
        sandbox: Sandbox, smtp_server: SmtpServer) -> None:
    month = _emailed_month(container, hooks, client, sandbox)
    month.advance(START + 2 * HOUR)  # Stripe finalizes an emailed invoice an hour later
    invoice = month.invoice()
    assert (invoice.status, invoice.collection_method, invoice.attempt_count) == (
        "open", "send_invoice", 0)
    sent = notices(container, "invoice_sent")
    assert len(sent) == 1
    mail = smtp_server.wait_for(1)[0]
    body = mail.part("plain")
    assert "due" in mail.subject and mail.rcpt_tos == [EMAIL]
    assert invoice.hosted_invoice_url in body
    assert "due by 11 March 2026" in body, body  # Mar 1 + 10 days
    assert tenant_row(container)["billing_status"] == "active"

    month.advance(START + 10 * DAY + 2 * HOUR)  # the due date passed: invoice.overdue
    assert client.v1.subscriptions.retrieve(month.subscription_id).status == "past_due"
    assert [e.to_state for e in timeline(container)][-1] == "overdue_reminder"
    overdue = notices(container, "invoice_overdue")
    assert len(overdue) == 1
    row = tenant_row(container)
    assert (row["api_access_enabled"], row["soft_suspended"]) == (True, False)

    paid = sandbox.page("POST", invoice.hosted_invoice_url + "/pay", {},
                        b"payment_method=pm_card_visa")  # the card the customer typed in
    assert paid.status == 303  # back to the page, now paid
    month.deliver_new()
    assert [e.to_state for e in timeline(container)][-1] == "good_standing"
    assert len(notices(container, "payment_received")) == 1
    assert tenant_row(container)["billing_status"] == "active"
    assert client.v1.subscriptions.retrieve(month.subscription_id).status == "active"


def _state_version(container: Container) -> int:
    with container.db.session() as session:
        row = TenantRepository(session).get(TENANT)
        assert row is not None
        return row.state_version


def _overdue_states(container: Container) -> list[tuple[str, str]]:
    return [(e.to_state, e.cause) for e in timeline(container)
            if e.to_state.startswith("overdue_")]


def test_the_daily_job_takes_the_later_overdue_steps_once_each_then_payment_restores(
        container: Container, hooks: WebhookComponents, client: stripe.StripeClient,
        sandbox: Sandbox, smtp_server: SmtpServer) -> None:
    month = _emailed_month(container, hooks, client, sandbox)
    month.advance(START + 2 * HOUR)
    first = month.invoice()
    due = START + 10 * DAY  # day 1 once this passes; day n is due + (n - 1) days

    def run_job_on_day(day: int) -> dict[str, int]:
        month.advance(due + (day - 1) * DAY + HOUR)  # Stripe's events of the days between
        run = container.jobs.run("overdue-invoices")
        assert run.outcome == "ok", run.error
        return run.counts

    def mails(kind: str) -> list[str]:
        return [str((n.facts or {}).get("days_past_due")) for n in notices(container, kind)
                if n.status == "sent"]

    assert run_job_on_day(1)["stepped"] == 0  # the webhook took day 1 before the job ran
    assert _overdue_states(container) == [("overdue_reminder", "webhook")]
    assert run_job_on_day(14) == {"invoices": 1, "tenants": 1, "stepped": 0, "unchanged": 1,
                                  "unknown": 0, "failed": 0}
    assert run_job_on_day(15)["stepped"] == 1
    assert _overdue_states(container)[-1] == ("overdue_warning", "job")
    version = _state_version(container)
    again = container.jobs.run("overdue-invoices").counts  # the same day: nothing new
    assert (again["stepped"], again["unchanged"]) == (0, 1)
    assert _state_version(container) == version  # not even a turn taken on the tenant
    assert mails("invoice_overdue") == ["1", "15"]

    counts = run_job_on_day(30)  # the April renewal is open too, not yet 30 days late
    assert (counts["invoices"], counts["tenants"], counts["stepped"]) == (2, 1, 1)
    row = tenant_row(container)
    assert (row["soft_suspended"], row["api_access_enabled"],
            row["rate_limit_multiplier"]) == (True, True, 0.5)
    assert run_job_on_day(45)["stepped"] == 1
    assert container.jobs.run("overdue-invoices").counts["stepped"] == 0
    row = tenant_row(container)
    assert (row["billing_status"], row["api_access_enabled"]) == ("suspended", False)
    assert _overdue_states(container) == [
        ("overdue_reminder", "webhook"), ("overdue_warning", "job"),
        ("overdue_reduced", "job"), ("overdue_suspended", "job")]
    assert mails("invoice_overdue") == ["1", "15", "30", "45"]  # once each, in order
    overdue_mails = [m for m in smtp_server.wait_for(len(smtp_server.messages))
                     if "overdue" in m.subject.lower()]
    assert len(overdue_mails) == 4, [m.subject for m in overdue_mails]

    # The customer pays what is owed on the hosted pages: the oldest invoice, then April's.
    renewal = month.invoice()
    assert renewal.id != first.id and renewal.status == "open"
    for invoice in (first, renewal):
        paid = sandbox.page("POST", invoice.hosted_invoice_url + "/pay", {},
                            b"payment_method=pm_card_visa")
        assert paid.status == 303
        month.deliver_new()
    assert timeline(container)[-1].to_state == "good_standing"
    row = tenant_row(container)
    assert (row["billing_status"], row["api_access_enabled"], row["soft_suspended"]) == (
        "active", True, False)
    assert container.jobs.run("overdue-invoices").counts["invoices"] == 0
    assert len(notices(container, "invoice_overdue")) == 4
