"""A delivery the sandbox drops is caught by the scheduled `webhook-catch-up` job: the inline
scheduler on a fake clock runs it when its hour comes, the event is stored from Stripe's list
and handled, and the tenant's access follows."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import stripe

from meterbill.adapters.tasks.scheduler import InlineScheduler
from meterbill.bootstrap import Container

from .conftest import inbox_rows, tenant_state
from .test_delivery import LiveApp, live, settle  # noqa: F401  (the live app fixture)


def jumping_clock(start: datetime, then: datetime) -> Callable[[], datetime]:
    """A clock that reads `start` once (the scheduler plans its first run), then `then`."""
    reads: Iterator[datetime] = iter([start])
    return lambda: next(reads, then)


def test_a_dropped_delivery_is_caught_by_the_hourly_job(
        live: LiveApp, container: Container, stripe_client: stripe.StripeClient) -> None:  # noqa: F811
    live.dispatcher.configure(duplicate=False, shuffle_seconds=0.0)
    tenant = container.customers.ensure_customer("lost", "lost@example.test", None)
    assert tenant.stripe_customer_id is not None
    sub = container.subscriptions.create("lost", tenant.stripe_customer_id, "starter",
                                         payment_method_id="pm_card_visa", trial_days=0)
    settle(live)
    live.dispatcher.configure(drop_next=50)  # everything the cancellation sends is lost
    stripe_client.v1.subscriptions.cancel(sub.id)
    settle(live)
    live.dispatcher.configure(drop_next=0)
    deleted = [e["id"] for e in live.dispatcher.sandbox.store.all("event")
               if e["type"] == "customer.subscription.deleted"]
    assert deleted and set(deleted) <= set(live.dispatcher.dropped)
    assert not {r.event_id for r in inbox_rows(container)} & set(deleted)
    assert tenant_state(container, "lost")["api_access_enabled"] is True  # nobody knows yet

    job = container.jobs.job("webhook-catch-up")
    now = datetime.now(UTC)
    scheduler = InlineScheduler([(job.name, job.schedule)], container.jobs.run,
                                clock=jumping_clock(now, now + timedelta(hours=1, seconds=1)))
    scheduler.start()
    deadline = time.monotonic() + 20
    while tenant_state(container, "lost")["api_access_enabled"]:
        assert time.monotonic() < deadline, "the catch-up job did not handle the lost event"
        time.sleep(0.05)
    scheduler.stop()
    settle(live)
    rows = {r.event_id: r.status for r in inbox_rows(container)}
    assert all(rows[event_id] == "handled" for event_id in deleted)
    assert tenant_state(container, "lost")["billing_status"] == "canceled"
    last = {s.name: s.last_run for s in container.jobs.status()}["webhook-catch-up"]
    assert last is not None and last.outcome == "ok" and last.counts["inserted"] >= 1
