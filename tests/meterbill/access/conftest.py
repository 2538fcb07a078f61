"""Fixtures for dunning: a container that mails through a real SMTP server, webhooks wired on
it with the dunning service, and a Pro tenant on a test clock whose card fails every charge.

`Month` drives the scenario: `advance_to(day)` moves the test clock, then hands the sandbox's
new events to the webhook processor (in order, or shuffled with repeats and replays) and runs
them, as Stripe's deliveries and meterbill's workers would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe

from meterbill.adapters.db.notifications import BillingNotice, NoticeRepository
from meterbill.adapters.db.repositories import TenantRepository
from meterbill.adapters.db.timeline import TimelineEntry, TimelineRepository
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents
from meterbill.config import Settings
from meterbill.domain.dunning import KNOWN_NOTICES
from meterbill.ports.webhooks import parse_event
from stripe_sandbox import Sandbox

from ..conftest import make_settings
from ..smtp import SmtpServer
from ..webhooks import conftest as webhook_fixtures
from ..webhooks.conftest import event_body

# The parent `container` builds on this directory's `settings`; webhook processing is the
# webhook tests' own (the container's dunning service and notifier are its defaults).
hooks = webhook_fixtures.hooks

DAY = 86400
HOUR = 3600
START = int(datetime(2026, 3, 1, 9, tzinfo=UTC).timestamp())
TENANT = "acme"
EMAIL = "billing@acme.test"


@pytest.fixture
def settings(database_url: str, smtp_server: SmtpServer) -> Settings:
    return make_settings(database_url, smtp_url=smtp_server.url)


@dataclass
class Month:
    container: Container
    hooks: WebhookComponents
    client: stripe.StripeClient
    sandbox: Sandbox
    clock_id: str
    customer_id: str
    subscription_id: str
    first_failure: int = 0  # Unix time of day 1: the renewal's first failed charge
    mode: str = "in_order"
    dice: random.Random = field(default_factory=lambda: random.Random(7))
    delivered: list[dict[str, Any]] = field(default_factory=list)
    noise: dict[str, int] = field(default_factory=lambda: {"repeats": 0, "replays": 0})

    def at_day(self, day: int) -> int:
        return self.first_failure + (day - 1) * DAY

    def advance(self, to: int) -> None:
        self.client.v1.test_helpers.test_clocks.advance(self.clock_id,
                                                        params={"frozen_time": to})
        self.deliver_new()

    def advance_to(self, day: int) -> None:
        self.advance(self.at_day(day) + HOUR)

    def new_events(self) -> list[dict[str, Any]]:
        seen = {e["id"] for e in self.delivered}
        found = []
        for event in self.sandbox.store.all("event"):
            obj = event["data"]["object"]
            if event["id"] not in seen and (obj.get("customer") == self.customer_id
                                            or obj.get("id") == self.customer_id):
                found.append(event)
        return found

    def deliver_new(self) -> None:
        batch = self.new_events()
        self.delivered.extend(batch)
        if self.mode == "in_order":
            self.deliver(batch)
            return
        # Stripe's order is not guaranteed and it delivers twice; old events come again too,
        # and a replay (or a worker that died after handling) processes one a second time.
        noisy = [e for e in batch for _ in range(self.dice.choice((1, 2)))]
        noisy += self.dice.sample(self.delivered, min(3, len(self.delivered)))
        self.dice.shuffle(noisy)
        self.deliver(noisy)
        handled = [e for e in self.delivered if e["type"].startswith("invoice.payment")]
        for event in self.dice.sample(handled, min(2, len(handled))):
            self.hooks.admin.replay(event["id"])
            self.noise["replays"] += 1
        self.hooks.runner.run_all()  # type: ignore[attr-defined]

    def deliver(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            receipt = self.hooks.intake.store(parse_event(event_body(event)))
            if receipt.row_id is None:
                self.noise["repeats"] += 1  # already in the inbox: never handled twice
                continue
            result = self.hooks.processor.process(receipt.row_id)
            assert result.outcome in ("handled", "ignored", "skipped"), result

    def invoice(self) -> Any:
        sub = self.client.v1.subscriptions.retrieve(self.subscription_id)
        return self.client.v1.invoices.retrieve(str(sub.latest_invoice))


def start_month(container: Container, hooks: WebhookComponents, client: stripe.StripeClient,
                sandbox: Sandbox, *, mode: str = "in_order") -> Month:
    """A Pro subscription with a 14-day trial on a card that attaches but never pays, made
    through meterbill's own service; the clock stops just before the trial ends."""
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": START})
    customer = client.v1.customers.create(params={
        "email": EMAIL, "name": "Acme Inc.", "test_clock": clock.id,
        "metadata": {"tenant_id": TENANT}})
    with container.db.session() as session:
        TenantRepository(session).claim_customer(TENANT, EMAIL, "Acme Inc.", customer.id)
    view = container.subscriptions.create(TENANT, customer.id, "pro", trial_days=14,
                                          payment_method_id="pm_card_chargeCustomerFail")
    assert view.status == "trialing" and view.trial_end is not None
    month = Month(container, hooks, client, sandbox, clock.id, customer.id, view.id,
                  mode=mode)
    month.deliver_new()
    trial_end = int(view.trial_end.timestamp())
    # Stripe finalizes and charges the first paid invoice about an hour after the trial.
    month.first_failure = trial_end + HOUR
    return month


def tenant_row(container: Container) -> dict[str, Any]:
    with container.db.session() as session:
        row = TenantRepository(session).get(TENANT)
        assert row is not None
        return {k: getattr(row, k) for k in (
            "billing_status", "payment_failures", "rate_limit_multiplier", "soft_suspended",
            "api_access_enabled", "suspended_at", "last_payment_date")}


def timeline(container: Container) -> list[TimelineEntry]:
    with container.db.session() as session:
        return list(TimelineRepository(session).for_tenant(TENANT))


def notices(container: Container, kind: str | None = None) -> list[BillingNotice]:
    with container.db.session() as session:
        return [n for n in NoticeRepository(session).all(kind)
                if n.tenant_id == TENANT and n.kind in KNOWN_NOTICES]


def as_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def seconds(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def days(n: float) -> timedelta:
    return timedelta(days=n)
