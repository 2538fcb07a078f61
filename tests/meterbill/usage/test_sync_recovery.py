"""Crashes and failures around the Stripe call: the ledger's pending rows make every one exact.

Young pending rows are resent with the same identifier and idempotency key; rows older than
Stripe's 24-hour dedupe windows are first looked up in the meter's event summaries. The
sandbox's windows are shortened to 0 to stand for a day passing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from meterbill.adapters.db.usage_ledger import UsageLedgerEntry
from meterbill.bootstrap import Container
from stripe_sandbox import Sandbox
from stripe_sandbox.faults import install as install_faults

from .sync_helpers import METER_EVENTS, START, World, event, make_world

DAY = timedelta(days=1)


class Crash(BaseException):
    pass


class CrashAround:
    """Meters that die before or after Stripe's answer to the first send."""

    def __init__(self, inner: Any, after_call: bool) -> None:
        self.inner = inner
        self.after_call = after_call

    def send_meter_event(self, **kwargs: Any) -> Any:
        if self.after_call:
            self.inner.send_meter_event(**kwargs)
        raise Crash("killed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def world(container: Container, sandbox: Sandbox) -> Iterator[World]:
    made = make_world(container, sandbox)
    made.subscribe("acme")
    made.advance(START + 3 * DAY)
    container.usage_store.insert([event("acme", START + DAY, 25), event("acme", START + DAY, 5)])
    yield made


def crash(world: World, *, after_call: bool) -> None:
    with pytest.raises(Crash):
        world.sync_service(meters=CrashAround(world.meters(), after_call)).sync(
            since=START.date())
    assert [r.state for r in world.ledger("acme")] == ["pending"]
    assert world.meter_total("acme") == (30 if after_call else 0)


def age_pending_rows(world: World, by: timedelta = timedelta(days=2)) -> None:
    """A day and more passes: our row is old, and Stripe has forgotten key and identifier."""
    with world.container.db.session() as session:
        for row in world.ledger("acme"):
            session.execute(update(UsageLedgerEntry).where(UsageLedgerEntry.id == row.id)
                            .values(created_at=row.created_at - by))
    world.sandbox.config.idempotency_ttl_seconds = 0
    world.sandbox.config.meter_identifier_ttl_seconds = 0


def test_a_young_pending_row_is_resent_and_stripe_replays_it(world: World) -> None:
    crash(world, after_call=True)
    world.counting.reset()
    report = world.sync_service().sync(since=START.date())
    assert world.counting.requests == {METER_EVENTS: 1}  # the resend, answered as a replay
    assert world.meter_total("acme") == 30
    assert [(r.state, r.attempts) for r in world.ledger("acme")] == [("sent", 1)]
    assert report.tenants[0].status == "sent"


def test_a_resent_identifier_stripe_already_has_counts_as_sent(world: World) -> None:
    crash(world, after_call=True)
    world.sandbox.config.idempotency_ttl_seconds = 0  # the key is forgotten, the id is not
    world.sync_service().sync(since=START.date())
    assert world.meter_total("acme") == 30
    assert [r.state for r in world.ledger("acme")] == ["sent"]


def test_an_old_pending_row_stripe_has_is_marked_sent_without_resending(world: World) -> None:
    crash(world, after_call=True)
    age_pending_rows(world)
    world.counting.reset()
    world.sync_service().sync(since=START.date())
    assert world.counting.requests[METER_EVENTS] == 0  # a resend now would count twice
    summaries = [p for (m, p) in world.counting.requests if p.endswith("/event_summaries")]
    assert len(summaries) == 1
    assert world.meter_total("acme") == 30
    assert [r.state for r in world.ledger("acme")] == ["sent"]


def test_an_old_pending_row_stripe_never_got_is_sent(world: World) -> None:
    crash(world, after_call=False)
    age_pending_rows(world)
    world.counting.reset()
    world.sync_service().sync(since=START.date())
    assert world.counting.requests[METER_EVENTS] == 1
    assert world.meter_total("acme") == 30
    assert [r.state for r in world.ledger("acme")] == ["sent"]


def test_an_old_pending_row_that_matches_nothing_is_left_for_review(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    crash(world, after_call=True)
    age_pending_rows(world)
    # Someone else reports usage for the customer in the very same minute.
    row = world.ledger("acme")[0]
    world.client.v1.billing.meter_events.create(params={
        "event_name": "queries", "timestamp": int(row.event_timestamp.timestamp()),
        "payload": {"stripe_customer_id": row.customer_id, "value": "7"}})
    with caplog.at_level(logging.ERROR, logger="meterbill.usage"):
        report = world.sync_service().sync(since=START.date())
    assert report.tenants[0].status == "failed"
    assert "cannot be matched" in (report.tenants[0].reason or "")
    assert any("ADMIN ALERT" in r.getMessage() for r in caplog.records)
    assert [r.state for r in world.ledger("acme")] == ["pending"]
    assert world.meter_total("acme") == 37  # nothing resent


def test_a_transient_failure_leaves_the_row_pending_until_the_next_run(world: World) -> None:
    faults = install_faults(world.sandbox)
    faults.configure(error_rate=1.0, paths=("/v1/billing/meter_events",))
    report = world.sync_service().sync(since=START.date())
    result = report.tenants[0]
    assert (result.status, result.retryable) == ("failed", True)
    assert [r.state for r in world.ledger("acme")] == ["pending"]
    assert "StripeUnavailable" in (world.ledger("acme")[0].error or "")

    faults.reset()
    world.sync_service().sync(since=START.date())
    assert world.meter_total("acme") == 30
    assert [(r.state, r.attempts) for r in world.ledger("acme")] == [("sent", 2)]


def test_flush_raises_for_a_retry_when_stripe_is_unavailable(world: World) -> None:
    from meterbill.domain.errors import StripeUnavailable

    faults = install_faults(world.sandbox)
    faults.configure(error_rate=1.0, paths=("/v1/billing/meter_events",))
    sync = world.sync_service()
    customer = world.tenants["acme"].customer_id
    with pytest.raises(StripeUnavailable):
        sync.flush(customer, START + 2 * DAY)
    faults.reset()
    sync.flush(customer, START + 2 * DAY)
    assert world.meter_total("acme") == 30
    sync.flush("cus_nobody", START + 2 * DAY)  # a customer no tenant has: nothing to do
