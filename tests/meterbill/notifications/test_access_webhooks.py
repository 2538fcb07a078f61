"""Outgoing `tenant.access_changed` events: one per committed change of a tenant's access,
recorded in the same transaction, signed as Stripe signs, retried until the SaaS takes it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe
from sqlalchemy import select

from meterbill.adapters.db.models import Tenant
from meterbill.adapters.db.notifications import BillingNotice
from meterbill.adapters.db.repositories import TenantRepository
from meterbill.adapters.outgoing_webhooks import SIGNATURE_HEADER
from meterbill.bootstrap import Container
from meterbill.domain.clock import utcnow
from meterbill.services.notifications.access_webhooks import CHANNEL, KIND
from stripe_sandbox import Sandbox

from ..conftest import make_container, make_settings
from .conftest import add_tenant

SECRET = "acc_secret_0123456789abcdef"


@dataclass
class Receiver:
    url: str = ""
    posts: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # body, headers
    fail: int = 0

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body, _ in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            if found.fail > 0:
                found.fail -= 1
                self.send_response(503)
                self.end_headers()
                return
            found.posts.append((body, dict(self.headers)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    found.url = f"http://127.0.0.1:{server.server_address[1]}/billing/access?token=t0k"
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def watched(database_url: str, sandbox: Sandbox, receiver: Receiver,
            stripe_client: stripe.StripeClient) -> Iterator[Container]:
    settings = make_settings(database_url, access_webhook_url=receiver.url,
                             access_webhook_secret=SECRET)
    built = make_container(settings, sandbox)
    add_tenant(built, stripe_client)  # no subscription yet: access none
    try:
        yield built
    finally:
        built.close()


def set_active(container: Container) -> None:
    """Subscribe the tenant (a trial, with a card): its access goes from none to full."""
    with container.db.session() as session:
        customer = session.scalar(select(Tenant.stripe_customer_id))
    assert customer is not None
    view = container.subscriptions.create("acme", customer, "pro",
                                          payment_method_id="pm_card_visa")
    assert view.status == "trialing"


def access_rows(container: Container) -> list[BillingNotice]:
    with container.db.session() as session:
        return list(session.scalars(select(BillingNotice).where(BillingNotice.channel == CHANNEL)
                                    .order_by(BillingNotice.id)))


def test_each_change_is_one_signed_event_with_before_and_after(
        watched: Container, receiver: Receiver) -> None:
    set_active(watched)  # none -> full
    watched.dunning.process_manual("acme", failure_count=3, invoice_amount=9900)  # reduced
    watched.dunning.process_manual("acme", failure_count=4, invoice_amount=9900)  # none
    watched.dunning.process_manual("acme", failure_count=0, invoice_amount=9900)  # full again

    # Each is posted right after the commit that made it; nothing is left for the sender.
    report = watched.notifications.send_due()
    assert report.sent == 0 and report.failed == 0
    assert [row.status for row in access_rows(watched)] == ["sent"] * 4
    changes = [(e["data"]["previous"]["access"], e["data"]["access"],
                e["data"]["rate_limit_multiplier"]) for e in receiver.events()]
    assert changes == [("none", "full", 1.0), ("full", "reduced", 0.5), ("reduced", "none", 0.0),
                       ("none", "full", 1.0)]
    first = receiver.events()[0]
    assert first["type"] == KIND and first["id"].startswith("acc_")
    assert first["data"]["tenant_id"] == "acme" and first["data"]["billing_status"] == "trialing"
    # The event says what the entitlement endpoint says.
    last = receiver.events()[-1]["data"]
    entitlement = watched.entitlement.get("acme")
    assert (last["access"], last["reason"], last["dunning_state"]) == (
        entitlement.access, entitlement.reason, entitlement.dunning_state)
    for body, headers in receiver.posts:  # verifiable with stripe-python, as Stripe's are
        assert stripe.WebhookSignature.verify_header(body, headers[SIGNATURE_HEADER], SECRET)
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.WebhookSignature.verify_header(body, headers[SIGNATURE_HEADER], "wrong")
    assert len({e["id"] for e in receiver.events()}) == 4


def test_no_event_for_a_rolled_back_change_or_a_decision_that_changes_nothing(
        watched: Container) -> None:
    from meterbill.services.access.writer import Cause

    access = watched.access
    assert access is not None
    with pytest.raises(RuntimeError), watched.db.session() as session:
        tenant = TenantRepository(session).get("acme")
        assert tenant is not None
        # As a trialing subscription would: the writer records the change, then the
        # transaction fails and takes the record with it.
        facts = access.facts(session, tenant)
        access.apply(session, tenant, type(facts)("trialing", dunning=facts.dunning),
                     Cause("request"))
        assert tenant.api_access_enabled is True
        session.flush()
        raise RuntimeError("the transaction fails after its write")
    for _ in range(2):  # the same facts again: nothing changes, nothing is recorded
        with watched.db.session() as session:
            tenant = TenantRepository(session).get("acme")
            assert tenant is not None
            change = access.apply(session, tenant, access.facts(session, tenant),
                                  Cause("request"))
            assert change.access_changed is False
    with watched.db.session() as session:  # a change that is not about access
        tenant = TenantRepository(session).get("acme")
        assert tenant is not None
        tenant.email = "new@acme.test"
    assert access_rows(watched) == []


def test_a_failing_receiver_gets_the_event_again_until_it_answers(
        watched: Container, receiver: Receiver) -> None:
    receiver.fail = 2
    set_active(watched)  # the first attempt is made right after the commit, and fails
    now = utcnow()
    [row] = access_rows(watched)
    assert (row.status, row.attempts) == ("pending", 1)
    assert watched.notifications.send_due(now + timedelta(minutes=1)).retrying == 1
    assert receiver.posts == []
    assert watched.notifications.send_due(now + timedelta(minutes=10)).sent == 1
    [row] = access_rows(watched)
    assert (row.status, row.attempts, row.recipient) == ("sent", 3, "ACCESS_WEBHOOK_URL")
    assert receiver.events()[0]["data"]["access"] == "full"


def test_without_a_url_no_event_is_recorded(container: Container,
                                            stripe_client: stripe.StripeClient) -> None:
    add_tenant(container, stripe_client)
    set_active(container)
    container.dunning.process_manual("acme", failure_count=3, invoice_amount=9900)
    with container.db.session() as session:
        assert session.scalar(select(Tenant.soft_suspended)) is True
    assert access_rows(container) == []


def test_a_webhook_handler_s_change_is_posted_right_after_its_commit(
        watched: Container, receiver: Receiver, sandbox: Sandbox,
        stripe_client: stripe.StripeClient) -> None:
    from meterbill.bootstrap.webhooks import build_webhooks
    from meterbill.ports.webhooks import parse_event

    from ..webhooks.conftest import ManualRunner, event_body, make_options, stripe_events

    with watched.db.session() as session:
        customer = session.scalar(select(Tenant.stripe_customer_id))
    # Subscribed in Stripe's dashboard, not through meterbill: only the webhook tells.
    plan = watched.catalog.get("starter")
    prices = watched.gateway.prices_by_lookup_key([plan.base_lookup_key])
    stripe_client.v1.subscriptions.create(params={
        "customer": str(customer), "trial_period_days": 7,
        "items": [{"price": prices[plan.base_lookup_key].id, "quantity": 1}],
        "metadata": {"tenant_id": "acme", "plan_type": "starter"}})
    created = next(e for e in stripe_events(sandbox, str(customer))
                   if e["type"] == "customer.subscription.created")
    hooks = build_webhooks(watched, options=make_options(), runner=ManualRunner())
    try:
        receipt = hooks.intake.store(parse_event(event_body(created)))
        assert receipt.row_id is not None
        assert hooks.processor.process(receipt.row_id).outcome == "handled"
    finally:
        hooks.close()
    assert [e["data"]["access"] for e in receiver.events()] == ["full"]  # no sender loop ran
