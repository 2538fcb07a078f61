"""The sweep: the inbox, not the broker, decides what still needs doing.

Run periodically (the inline runner's timer thread, or Celery beat). It dispatches rows that
were received a while ago and never claimed (a lost task, a process that stopped before its
pool ran the job), failed rows whose retry is due, and rows whose worker's lease ran out (a
killed worker). Dispatching twice is harmless: the claim lets only one worker through.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from ...adapters.db.inbox import InboxRepository
from ...adapters.db.session import Database
from ...domain.clock import utcnow
from ...ports.tasks import TaskRunner
from .options import WebhookOptions

log = logging.getLogger("meterbill.webhooks")


def due_rows(db: Database, options: WebhookOptions, now: datetime | None = None) -> list[int]:
    now = now or utcnow()
    with db.session() as session:
        return InboxRepository(session).due_ids(
            now=now, received_before=now - timedelta(seconds=options.sweep_after_seconds))


def sweep(db: Database, runner: TaskRunner, options: WebhookOptions,
          now: datetime | None = None) -> int:
    """Submit every row that is due; returns how many were submitted."""
    ids = due_rows(db, options, now)
    for row_id in ids:
        runner.submit(row_id)
    if ids:
        log.info("webhook sweep dispatched %d row(s)", len(ids))
    return len(ids)
