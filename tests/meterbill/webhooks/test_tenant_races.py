"""Handlers of one tenant racing each other: nothing is locked while Stripe answers, yet a
decision based on an older Stripe read never commits over a newer one (context.py)."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import select, update

from meterbill.adapters.db.models import Tenant
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents
from meterbill.ports.webhooks import parse_event
from meterbill.services.webhooks.context import HandlerContext, InboxEvent
from meterbill.services.webhooks.processor import CONFLICT_RUNS, ProcessResult

from .conftest import fake_event

CUSTOMER = "cus_race_0001"


def add_tenant(container: Container) -> None:
    with container.db.session() as session:
        session.add(Tenant(tenant_id="t_race", stripe_customer_id=CUSTOMER,
                           billing_status="active", api_access_enabled=True))


def store(hooks: WebhookComponents, event_type: str, event_id: str) -> int:
    body = fake_event(event_type, {"id": f"obj_{event_id}", "object": "invoice",
                                   "customer": CUSTOMER}, event_id=event_id)
    receipt = hooks.intake.store(parse_event(body))
    assert receipt.row_id is not None
    return receipt.row_id


def tenant(container: Container) -> Tenant:
    with container.db.session() as session:
        found = session.scalar(select(Tenant).where(Tenant.tenant_id == "t_race"))
        assert found is not None
        return found


def bump_elsewhere(container: Container) -> None:
    """Another handler of the tenant commits (a version bump, as its `confirm` does)."""
    with container.db.session() as session:
        session.execute(update(Tenant).where(Tenant.tenant_id == "t_race")
                        .values(state_version=Tenant.state_version + 1))


def test_an_older_stripe_read_never_commits_over_a_newer_one(hooks: WebhookComponents,
                                                            container: Container) -> None:
    add_tenant(container)
    stripe_state = {"status": "past_due"}  # what "Stripe" answers now
    read_done, go_on = threading.Event(), threading.Event()
    runs: list[tuple[str, str]] = []

    def slow(ctx: HandlerContext, event: InboxEvent) -> str:
        row = ctx.tenant_for_customer(event.customer_id)
        seen = stripe_state["status"]  # the Stripe read
        runs.append(("slow", seen))
        if len(runs) == 1:
            read_done.set()
            assert go_on.wait(10)  # the newer event is handled meanwhile
        row.billing_status = seen
        return f"status {seen}"

    def fast(ctx: HandlerContext, event: InboxEvent) -> str:
        row = ctx.tenant_for_customer(event.customer_id)
        runs.append(("fast", stripe_state["status"]))
        row.billing_status = stripe_state["status"]
        return "fast"

    hooks.processor.handlers = {"invoice.payment_failed": slow, "invoice.paid": fast}
    old_row = store(hooks, "invoice.payment_failed", "evt_race_old")
    new_row = store(hooks, "invoice.paid", "evt_race_new")
    results: list[ProcessResult] = []
    worker = threading.Thread(target=lambda: results.append(hooks.processor.process(old_row)))
    worker.start()
    assert read_done.wait(10)
    # While the slow handler waits with its (now old) read, Stripe moves on and the newer
    # event is handled and committed: no lock held by the slow one stands in its way.
    stripe_state["status"] = "active"
    assert hooks.processor.process(new_row).outcome == "handled"
    assert tenant(container).billing_status == "active"
    go_on.set()
    worker.join(10)

    assert results[0].outcome == "handled"
    # The slow handler's first decision (past_due) was refused at commit; it ran again on
    # the new state.
    assert runs == [("slow", "past_due"), ("fast", "active"), ("slow", "active")]
    assert tenant(container).billing_status == "active"
    assert tenant(container).state_version == 2  # one bump per committed decision


def test_after_repeated_conflicts_the_last_run_locks_first(hooks: WebhookComponents,
                                                          container: Container) -> None:
    add_tenant(container)
    locked: list[bool] = []

    def contested(ctx: HandlerContext, event: InboxEvent) -> str:
        row = ctx.tenant_for_customer(event.customer_id)
        locked.append(ctx.lock_first)
        if not ctx.lock_first:
            bump_elsewhere(container)  # someone always commits first
        row.payment_failures += 1
        return "done"

    hooks.processor.handlers = {"invoice.paid": contested}
    result = hooks.processor.process(store(hooks, "invoice.paid", "evt_race_busy"))

    assert result.outcome == "handled"
    assert locked == [False] * (CONFLICT_RUNS - 1) + [True]
    assert tenant(container).payment_failures == 1  # only the committed run's write


def test_an_error_caused_by_a_racing_handler_is_a_conflict_not_a_failure(
        hooks: WebhookComponents, container: Container) -> None:
    add_tenant(container)
    runs: list[Any] = []

    def clashing(ctx: HandlerContext, event: InboxEvent) -> str:
        ctx.tenant_for_customer(event.customer_id)
        runs.append(event.id)
        if len(runs) == 1:
            bump_elsewhere(container)
            raise RuntimeError("duplicate key value violates unique constraint")  # its row
        return "done"

    def broken(ctx: HandlerContext, event: InboxEvent) -> str:
        ctx.tenant_for_customer(event.customer_id)
        raise RuntimeError("a bug, with nobody racing")

    hooks.processor.handlers = {"invoice.paid": clashing, "invoice.payment_failed": broken}
    assert hooks.processor.process(store(hooks, "invoice.paid", "evt_clash")).outcome == "handled"
    assert len(runs) == 2
    failed = hooks.processor.process(store(hooks, "invoice.payment_failed", "evt_bug"))
    assert failed.outcome == "failed" and "a bug" in failed.detail
