"""Claims: two workers never handle one row at once; a dead worker's row is taken over once."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from meterbill.adapters.db.inbox import InboxRepository, NoticeRepository
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents
from meterbill.domain.clock import utcnow
from meterbill.ports.webhooks import parse_event
from meterbill.services.webhooks.context import HandlerContext, InboxEvent
from meterbill.services.webhooks.processor import WebhookProcessor

from .conftest import fake_event


def _noop(ctx: HandlerContext, event: InboxEvent) -> str:
    return "noop"


def stored(hooks: WebhookComponents, event_id: str = "evt_claim_1") -> int:
    hooks.processor.handlers = {"product.created": _noop}  # a type with work to do
    receipt = hooks.intake.store(parse_event(fake_event("product.created", event_id=event_id)))
    assert receipt.row_id is not None
    return receipt.row_id


def second_processor(hooks: WebhookComponents, name: str, **changes: Any) -> WebhookProcessor:
    first = hooks.processor
    return WebhookProcessor(first.db, first.stripe, first.catalog, first.dunning, first.usage,
                            first.options, handlers=changes.get("handlers", first.handlers),
                            clock=changes.get("clock", first.clock), worker=name)


def test_concurrent_claims_have_one_winner(hooks: WebhookComponents,
                                           container: Container) -> None:
    row_id = stored(hooks)
    barrier = threading.Barrier(8)
    wins: list[str] = []

    def claim(name: str) -> None:
        barrier.wait()
        with container.db.session() as session:
            if InboxRepository(session).claim(row_id, name, now=utcnow(),
                                              lease=timedelta(minutes=1)):
                wins.append(name)

    threads = [threading.Thread(target=claim, args=(f"w{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    with container.db.session() as session:
        row = InboxRepository(session).get(row_id)
        assert row is not None and row.claimed_by == wins[0] and row.attempts == 1


def test_a_row_being_handled_is_skipped_by_another_worker(hooks: WebhookComponents) -> None:
    row_id = stored(hooks)
    entered, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow(ctx: HandlerContext, event: InboxEvent) -> str:
        calls.append(event.id)
        entered.set()
        assert release.wait(10)
        return "done"

    first = second_processor(hooks, "first", handlers={"product.created": slow})
    second = second_processor(hooks, "second", handlers={"product.created": slow})
    results: list[str] = []
    thread = threading.Thread(target=lambda: results.append(first.process(row_id).outcome))
    thread.start()
    assert entered.wait(10)
    assert second.process(row_id).outcome == "skipped"
    release.set()
    thread.join()
    assert results == ["handled"] and calls == ["evt_claim_1"]
    assert second.process(row_id).outcome == "skipped"  # done rows are never taken again


def test_a_worker_that_lost_its_lease_changes_nothing(hooks: WebhookComponents,
                                                      container: Container) -> None:
    row_id = stored(hooks)
    entered, release = threading.Event(), threading.Event()

    def hung(ctx: HandlerContext, event: InboxEvent) -> str:
        entered.set()
        assert release.wait(10)
        ctx.notice(kind="test", dedupe_key="hung-worker", detail="x", tenant_id=None,
                   event_id=event.id)
        return "late"

    def prompt(ctx: HandlerContext, event: InboxEvent) -> str:
        ctx.notice(kind="test", dedupe_key="replacement", detail="x", tenant_id=None,
                   event_id=event.id)
        return "on time"

    slow = second_processor(hooks, "slow", handlers={"product.created": hung})
    later = utcnow() + timedelta(minutes=5)  # past the slow worker's 60 s lease
    replacement = second_processor(hooks, "replacement", handlers={"product.created": prompt},
                                   clock=lambda: later)
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(slow.process(row_id).outcome))
    thread.start()
    assert entered.wait(10)
    assert replacement.process(row_id).outcome == "handled"
    release.set()
    thread.join()
    assert outcome == ["lost"]
    with container.db.session() as session:
        assert [n.dedupe_key for n in NoticeRepository(session).all("test")] == ["replacement"]
        row = InboxRepository(session).get(row_id)
        assert row is not None and row.status == "handled" and row.note == "on time"


def test_the_sweep_dispatches_lost_and_expired_rows_only(hooks: WebhookComponents,
                                                         container: Container) -> None:
    waiting = stored(hooks, "evt_waiting")
    expired = stored(hooks, "evt_expired")
    live = stored(hooks, "evt_live")
    done = stored(hooks, "evt_done")
    now = utcnow()
    with container.db.session() as session:
        repo = InboxRepository(session)
        assert repo.claim(expired, "dead-worker", now=now - timedelta(minutes=10),
                          lease=timedelta(minutes=1))
        assert repo.claim(live, "busy-worker", now=now, lease=timedelta(minutes=5))
    hooks.processor.process(done)
    hooks.runner.submitted.clear()  # type: ignore[attr-defined]
    assert hooks.sweep(now + timedelta(seconds=1)) == 2
    assert sorted(hooks.runner.submitted) == sorted([waiting, expired])  # type: ignore[attr-defined]
    results = hooks.runner.run_all()  # type: ignore[attr-defined]
    assert [r.outcome for r in results] == ["handled", "handled"]
    with container.db.session() as session:
        assert InboxRepository(session).get(expired).attempts == 2  # type: ignore[union-attr]
