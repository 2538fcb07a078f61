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
