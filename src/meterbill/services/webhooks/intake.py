"""Accept a webhook: verify, store, commit, and only then hand it to the task runner.

`receive` raises `InvalidSignature` (answer 400, store nothing) and lets database errors through
(answer 5xx so that Stripe retries). It never answers "stored" for an event it did not commit.

Group commit: events are written by one writer thread that takes whatever requests are waiting
and stores them with one INSERT and one COMMIT, then answers each. Under load that turns one
commit (an fsync) per event into one per batch; alone, an event waits for nobody. If a batch
fails, its events are retried one by one, so one bad row cannot fail the others.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from ...adapters.db.inbox import InboxRepository
from ...adapters.db.models import utcnow
from ...adapters.db.session import Database
from .ports import SignatureVerifier, StripeEventRecord, TaskRunner, VerifiedEvent, parse_event

log = logging.getLogger("meterbill.webhooks")

MAX_BATCH = 256


@dataclass(frozen=True)
class Receipt:
    event_id: str
    type: str
    new: bool  # False: a repeat of an event already stored
    row_id: int | None


_Job = tuple[VerifiedEvent, "Future[Receipt]"]


class WebhookIntake:
    def __init__(self, db: Database, verifier: SignatureVerifier, runner: TaskRunner,
                 is_handled: Callable[[str], bool] | None = None) -> None:
        self.db = db
        self.verifier = verifier
        self.runner = runner
        # Events of types nobody handles are stored as `ignored` at once: no task, no worker.
        self.is_handled = is_handled or (lambda event_type: True)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()

    def receive(self, payload: bytes, signature_header: str | None) -> Receipt:
        return self.submit(payload, signature_header).result()

    def submit(self, payload: bytes, signature_header: str | None) -> Future[Receipt]:
        """Verify now (raises `InvalidSignature`); the future resolves once the event is
        committed (or raises the database's error)."""
        return self.store_later(self.verifier.verify(payload, signature_header))

    def store(self, event: VerifiedEvent) -> Receipt:
        return self.store_later(event).result()

    def store_listed(self, record: StripeEventRecord) -> Receipt:
        """Store an event fetched from Stripe's API (catch-up): trusted, no signature."""
        return self.store(parse_event(record.payload))

    def store_later(self, event: VerifiedEvent) -> Future[Receipt]:
        future: Future[Receipt] = Future()
        with self._lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                                name="meterbill-webhook-intake")
                self._writer.start()
        self._queue.put((event, future))
        return future

    def close(self) -> None:
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(None)
            writer.join(timeout=10)

    # --- the writer thread ---------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[_Job]) -> None:
        try:
            stored = self._insert([event for event, _ in batch])
        except Exception as error:  # the caller answers 503 (its log names the error type)
            if len(batch) == 1:
                batch[0][1].set_exception(error)
                return
            for job in batch:  # find the one that fails; the others are stored
                self._write([job])
            return
        # Committed: tasks may now look for the rows.
        for event, future in batch:
            row_id = stored.pop(event.id, None)  # a repeat within the batch is not new
            if row_id is not None and self.is_handled(event.type):
                self._submit(event, row_id)
            future.set_result(Receipt(event.id, event.type, row_id is not None, row_id))

    def _insert(self, events: list[VerifiedEvent]) -> dict[str, int]:
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for e in events:
            row: dict[str, Any] = {"event_id": e.id, "type": e.type, "created": e.created,
                                   "payload": e.payload, "object_id": e.object_id}
            if not self.is_handled(e.type):
                row.update(status="ignored", handled_at=now, note=f"no handler for {e.type}")
            rows.append(row)
        with self.db.session() as session:
            return InboxRepository(session).insert_many(rows)

    def _submit(self, event: VerifiedEvent, row_id: int) -> None:
        try:
            self.runner.submit(row_id)
        except Exception:  # a broker hiccup: the sweep dispatches the row later
            log.exception("could not hand webhook %s to the task runner; the sweep will",
                          event.id)
