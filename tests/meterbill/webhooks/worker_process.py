"""A webhook worker in a process of its own, for the SIGKILL test (run as a script).

    python worker_process.py DATABASE_URL MARKER_FILE hang|run

`hang`: processes every due row with a handler that records a notice, touches MARKER_FILE and
then hangs (to be killed mid-handling). `run`: sweeps and processes what is due, then exits.
The handler's notice is the effect that must happen exactly once.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from meterbill.adapters.db.session import Database
from meterbill.bootstrap.webhooks import webhook_options
from meterbill.config import Settings
from meterbill.domain.plans import load_catalog
from meterbill.services.webhooks.context import HandlerContext, InboxEvent, NoUsageFlush
from meterbill.services.webhooks.processor import WebhookProcessor
from meterbill.services.webhooks.sweep import due_rows


def main(url: str, marker: str, mode: str) -> None:
    def handler(ctx: HandlerContext, event: InboxEvent) -> str:
        ctx.notice(kind="effect", dedupe_key=f"effect:{event.id}:{mode}", detail=mode,
                   tenant_id=None, event_id=event.id)
        ctx.session.flush()  # the write is in the database, uncommitted
        Path(marker).write_text(event.id)
        while mode == "hang":
            time.sleep(1)
        return f"handled by {mode}"

    options = webhook_options(Settings(_env_file=None),  # type: ignore[call-arg]
                              lease_seconds=0.5, sweep_after_seconds=0.0)
    db = Database(url)
    stripe: Any = None  # this handler never asks Stripe
    dunning: Any = None  # nor decides about a tenant
    processor = WebhookProcessor(db, stripe, load_catalog(None), dunning,
                                 NoUsageFlush(), options, handlers={"product.created": handler},
                                 worker=f"{mode}-worker")
    for row_id in due_rows(db, options):
        print(processor.process(row_id).outcome, flush=True)
    db.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:4])
