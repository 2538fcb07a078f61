"""Notices recorded by webhook handlers are sent right after the handler's commit: the
finalization-failed path ends as an admin email, a dead webhook as an admin alert."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import stripe

from meterbill.adapters.db.notifications import NoticeRepository
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents, build_webhooks
from meterbill.domain.clock import utcnow
from meterbill.ports.webhooks import parse_event
from meterbill.services.webhooks.context import HandlerContext, InboxEvent
from stripe_sandbox import Sandbox

from ..smtp import SmtpServer
from ..webhooks.conftest import ManualRunner, event_body, fake_event, make_options
from .conftest import ADMIN, add_tenant


@pytest.fixture
def hooks(mail_container: Container) -> Iterator[WebhookComponents]:
    runner = ManualRunner()
    components = build_webhooks(mail_container, options=make_options(max_attempts=2),
                                runner=runner)
    runner.components = components
    try:
        yield components
    finally:
        components.close()


def store_and_process(hooks: WebhookComponents, body: bytes) -> str:
    receipt = hooks.intake.store(parse_event(body))
    assert receipt.row_id is not None
    return hooks.processor.process(receipt.row_id).outcome


def test_invoice_finalization_failed_ends_as_an_admin_email(
        mail_container: Container, hooks: WebhookComponents, smtp_server: SmtpServer,
        stripe_client: stripe.StripeClient, sandbox: Sandbox) -> None:
    customer_id = add_tenant(mail_container, stripe_client)
    stripe_client.v1.invoice_items.create(params={"customer": customer_id, "amount": 4900,
                                                  "currency": "usd"})
    invoice = stripe_client.v1.invoices.create(params={
        "customer": customer_id, "pending_invoice_items_behavior": "include"})
    stripe_client.v1.customers.delete(customer_id)  # finalizing now fails in Stripe
    stripe_client.v1.invoices.finalize_invoice(invoice.id)
    [event] = [e for e in sandbox.store.all("event")
               if e["type"] == "invoice.finalization_failed"]
    body = event_body(event)
    assert store_and_process(hooks, body) == "handled"
    [message] = smtp_server.wait_for(1)  # sent right after the commit, no sender loop
    assert message.rcpt_tos == [ADMIN]
    assert message.subject == f"[meterbill] Invoice {invoice.id} of tenant acme could not be " \
                              "finalized: No such customer: " + f"'{customer_id}'"
    assert "Fix it in Stripe" in message.text and "Tenant: acme" in message.text
    hooks.admin.replay(event["id"])  # processed again: no second alert
    hooks.runner.run_all()  # type: ignore[attr-defined]
    assert mail_container.notifications.send_due().sent == 0
    assert len(smtp_server.messages) == 1


def test_a_dead_webhook_raises_an_admin_alert(mail_container: Container,
                                              hooks: WebhookComponents,
                                              smtp_server: SmtpServer) -> None:
    def broken(ctx: HandlerContext, event: InboxEvent) -> str:
        raise RuntimeError("handler bug")

    hooks.processor.handlers = {"product.created": broken}
    receipt = hooks.intake.store(parse_event(fake_event(event_id="evt_dies_1")))
    assert receipt.row_id is not None
    assert hooks.processor.process(receipt.row_id).outcome == "failed"
    assert smtp_server.messages == []  # a retry is not worth an alert
    later = utcnow() + timedelta(hours=1)  # past the retry's backoff
    hooks.processor.clock = lambda: later
    assert hooks.processor.process(receipt.row_id).outcome == "dead"
    [message] = smtp_server.wait_for(1)
    assert message.subject == "[meterbill] Webhook product.created evt_dies_1 is dead"
    assert "RuntimeError: handler bug" in message.text
    assert "meterbill webhooks replay evt_dies_1" in message.text


def test_handler_notices_with_facts_are_rendered_and_sent(
        mail_container: Container, hooks: WebhookComponents, smtp_server: SmtpServer) -> None:
    facts: dict[str, Any] = {"email": "ap@acme.test", "tenant_name": "Acme",
                             "trial_end": "2026-12-01T00:00:00Z", "plan": "pro"}

    def remind(ctx: HandlerContext, event: InboxEvent) -> str:
        ctx.notice(kind="trial_ending_no_payment_method", dedupe_key=f"trial:{event.id}",
                   detail="trial ends", tenant_id="acme", event_id=event.id, facts=facts)
        return "reminded"

    hooks.processor.handlers = {"product.created": remind}
    assert store_and_process(hooks, fake_event(event_id="evt_trial_1")) == "handled"
    [message] = smtp_server.wait_for(1)
    assert message.rcpt_tos == ["ap@acme.test"]
    assert message.subject == "Your trial ends on 1 December 2026: add a payment method"
    with mail_container.db.session() as session:
        [row] = NoticeRepository(session).all("trial_ending_no_payment_method")
        assert row.status == "sent" and row.event_id == "evt_trial_1"
