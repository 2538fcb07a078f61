"""Operator commands over the inbox: list, show, replay, and catch-up from Stripe's event list.

Catch-up follows Stripe's advice for undelivered events: list `GET /v1/events` (Stripe keeps 30
days) and store those the inbox lacks, exactly as if they had been delivered.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...adapters.db.inbox import InboxRepository, WebhookEvent
from ...adapters.db.session import Database
from ...domain.errors import Conflict, NotFound
from ...ports.tasks import TaskRunner
from ...ports.webhooks import StripeEventsPort
from .intake import WebhookIntake


@dataclass(frozen=True)
class InboxRow:
    id: int
    event_id: str
    type: str
    object_id: str | None
    status: str
    attempts: int
    created: datetime
    received_at: datetime
    handled_at: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None
    note: str | None

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v)
                for k, v in self.__dict__.items()}


def inbox_row(row: WebhookEvent) -> InboxRow:
    return InboxRow(id=row.id, event_id=row.event_id, type=row.type, object_id=row.object_id,
                    status=row.status, attempts=row.attempts, created=row.created,
                    received_at=row.received_at, handled_at=row.handled_at,
                    next_attempt_at=row.next_attempt_at, last_error=row.last_error,
                    note=row.note)


@dataclass(frozen=True)
class CatchUpResult:
    listed: int
    inserted: list[str]


class WebhookAdmin:
    def __init__(self, db: Database, runner: TaskRunner, intake: WebhookIntake,
                 stripe: StripeEventsPort) -> None:
        self.db = db
        self.runner = runner
        self.intake = intake
        self.stripe = stripe

    def list(self, *, status: str | None = None, type: str | None = None,
             limit: int = 50) -> list[InboxRow]:
        with self.db.session() as session:
            rows = InboxRepository(session).recent(status=status, type=type, limit=limit)
            return [inbox_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self.db.session() as session:
            return InboxRepository(session).counts()

    def show(self, key: str) -> tuple[InboxRow, str, str | None]:
        """The row, its raw payload and the last traceback, by inbox id or `evt_` id."""
        with self.db.session() as session:
            row = InboxRepository(session).find(key)
            if row is None:
                raise NotFound(f"No webhook event {key} in the inbox", code="unknown_event")
            return inbox_row(row), row.payload, row.traceback

    def replay(self, key: str) -> InboxRow:
        """Run a stored event again (after fixing what made it fail, or to re-sync)."""
        with self.db.session() as session:
            repo = InboxRepository(session)
            row = repo.find(key)
            if row is None:
                raise NotFound(f"No webhook event {key} in the inbox", code="unknown_event")
            if not repo.requeue(row.id):
                raise Conflict(f"Webhook event {key} is being processed right now; try again "
                               "when it is done.", code="event_processing")
            row_id = row.id
        self.runner.submit(row_id)
        with self.db.session() as session:
            found = InboxRepository(session).get(row_id)
            assert found is not None
            return inbox_row(found)

    def replay_failed(self) -> builtins.list[int]:
        """Requeue every failed, dead and parked row; returns their ids."""
        with self.db.session() as session:
            repo = InboxRepository(session)
            ids = [i for i in repo.ids_with_status(("failed", "dead", "parked"))
                   if repo.requeue(i)]
        for row_id in ids:
            self.runner.submit(row_id)
        return ids

    def catch_up(self, since: datetime) -> CatchUpResult:
        listed = list(self.stripe.list_events(since=since))
        with self.db.session() as session:
            known = InboxRepository(session).known_event_ids(e.id for e in listed)
        inserted = [e.id for e in listed
                    if e.id not in known and self.intake.store_listed(e).new]
        return CatchUpResult(listed=len(listed), inserted=inserted)
