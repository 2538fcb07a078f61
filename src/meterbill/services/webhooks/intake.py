"""Accept a webhook: verify, store, commit, and only then hand it to the task runner.

`submit` raises `InvalidSignature` (answer 400, store nothing); its future raises database
errors (answer 5xx so that Stripe retries). It never answers "stored" for an event it did not
commit.

Group commit: events are written by one writer thread that takes whatever requests are waiting
and stores them with one INSERT and one COMMIT, then answers each. Under load that turns one
commit (an fsync) per event into one per batch; alone, an event waits for nobody. If a batch
fails, its events are retried one by one, so one bad row cannot fail the others.

The INSERT is one statement per database, compiled once (`adapters.db.inbox.InboxWriter`).

Time bound: a delivery waits at most `store_timeout` seconds for its commit (the endpoint
answers 503 after that, and Stripe delivers it again). A waiter that gave up cancels its
future, and the writer skips an event whose future is cancelled; one already in a batch may
still be committed (whole, in the batch's one transaction), and Stripe's retry is then a
repeat. A writer stuck on a batch longer than the bound (a connection that went silent) is
left to finish on its own, and a new writer takes the queue, on a connection of its own; at
most `MAX_STUCK_WRITERS` are left so at a time, so a database that stalls every connection
costs a bounded number of threads and connections (the pool's timeout answers the rest).

Committed rows go to the task runner from a second thread, the dispatcher, so that broker
round trips (Celery) never hold up the next commit; rows committed meanwhile go over together.
HTTP deliveries are answered at the commit; `store` (catch-up, replays, tests) returns once
the task runner has the row as well.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

from ...adapters.db.inbox import InboxWriter
from ...adapters.db.session import Database
from ...domain.clock import Clock, utcnow
from ...ports.tasks import BatchTaskRunner, TaskRunner
from ...ports.webhooks import SignatureVerifier, StripeEventRecord, VerifiedEvent, parse_event

log = logging.getLogger("meterbill.webhooks")

MAX_BATCH = 256
MAX_STUCK_WRITERS = 4


@dataclass(frozen=True)
class Receipt:
    event_id: str
    type: str
    new: bool  # False: a repeat of an event already stored
    row_id: int | None


# The event, its answer, and whether to answer before the task handoff (the HTTP path).
_Job = tuple[VerifiedEvent, "Future[Receipt]", bool]
# For the dispatcher: new rows to hand over, then answers that wait for the handoff.
_Handoff = tuple[list[tuple[VerifiedEvent, int]], list[tuple["Future[Receipt]", Receipt]]]


class WebhookIntake:
    def __init__(self, db: Database, verifier: SignatureVerifier, runner: TaskRunner,
                 is_handled: Callable[[str], bool] | None = None, *,
                 clock: Clock = utcnow, store_timeout: float = 5.0) -> None:
        self.db = db
        self.verifier = verifier
        self.runner = runner
        # Events of types nobody handles are stored as `ignored` at once: no task, no worker.
        self.is_handled = is_handled or (lambda event_type: True)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._handoffs: queue.Queue[_Handoff | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._dispatcher: threading.Thread | None = None
        self._lock = threading.Lock()
        self.store_timeout = store_timeout
        self._busy_since: float | None = None  # when the current writer began its batch
        # Writers left to finish a batch that outlasted the bound; they stop after it.
        self._stuck: set[threading.Thread] = set()
        self.clock = clock
        self._inbox = InboxWriter()

    def receive(self, payload: bytes, signature_header: str | None) -> Receipt:
        """Verify and store, waiting until the task runner has the new row."""
        return self._enqueue(self.verifier.verify(payload, signature_header), False).result()

    def submit(self, payload: bytes, signature_header: str | None) -> Future[Receipt]:
        """Verify now (raises `InvalidSignature`); the future resolves once the event is
        committed (or raises the database's error), before its task is handed over."""
        return self._enqueue(self.verifier.verify(payload, signature_header), True)

    def store(self, event: VerifiedEvent) -> Receipt:
        return self.store_later(event).result()

    def store_listed(self, record: StripeEventRecord) -> Receipt:
        """Store an event fetched from Stripe's API (catch-up): trusted, no signature."""
        return self.store(parse_event(record.payload))

    def store_later(self, event: VerifiedEvent) -> Future[Receipt]:
        """The future resolves once the event is committed and its task handed over."""
        return self._enqueue(event, False)

    def _enqueue(self, event: VerifiedEvent, answer_first: bool) -> Future[Receipt]:
        future: Future[Receipt] = Future()
        with self._lock:
            if self._writer is None or not self._writer.is_alive():
                self._start_writer()
            elif self._is_stuck():
                log.error("webhook intake: the writer has been on one batch for over %.1f s "
                          "(a stalled database connection?); a new writer takes the queue",
                          self.store_timeout)
                self._stuck.add(self._writer)
                self._start_writer()
            if self._dispatcher is None or not self._dispatcher.is_alive():
                self._dispatcher = threading.Thread(target=self._dispatch_loop, daemon=True,
                                                    name="meterbill-webhook-dispatch")
                self._dispatcher.start()
        self._queue.put((event, future, answer_first))
        return future

    def _start_writer(self) -> None:
        self._busy_since = None
        self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                        name="meterbill-webhook-intake")
        self._writer.start()

    def _is_stuck(self) -> bool:
        since = self._busy_since
        return (since is not None and len(self._stuck) < MAX_STUCK_WRITERS
                and time.monotonic() - since > self.store_timeout)

    def close(self) -> None:
        """Store what is queued, hand it over, and stop both threads."""
        with self._lock:
            writer, self._writer = self._writer, None
            dispatcher, self._dispatcher = self._dispatcher, None
        if writer is not None:
            self._queue.put(None)
            writer.join(timeout=10)
        if dispatcher is not None:
            self._handoffs.put(None)
            dispatcher.join(timeout=10)

    # --- the writer thread ---------------------------------------------------------------------

    def _write_loop(self) -> None:
        me = threading.current_thread()
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
            # A delivery whose waiter gave up (answered 503) is not stored: Stripe retries it.
            batch = [job for job in batch if not job[1].cancelled()]
            if batch:
                with self._lock:
                    if self._writer is me:
                        self._busy_since = time.monotonic()
                self._write(batch)
                with self._lock:
                    if me in self._stuck:  # replaced while stuck: the new writer goes on
                        self._stuck.discard(me)
                        if stop:  # the stop was meant for the writer now in charge
                            self._queue.put(None)
                        return
                    if self._writer is me:
                        self._busy_since = None
            if stop:
                return

    def _write(self, batch: list[_Job]) -> None:
        try:
            stored = self._insert([job[0] for job in batch])
        except Exception as error:  # the caller answers 503 (its log names the error type)
            if len(batch) == 1:
                _settle(batch[0][1], error=error)
                return
            for job in batch:  # find the one that fails; the others are stored
                self._write([job])
            return
        # Committed: HTTP deliveries are answered now; the dispatcher hands the rows over.
        tasks: list[tuple[VerifiedEvent, int]] = []
        later: list[tuple[Future[Receipt], Receipt]] = []
        for event, future, answer_first in batch:
            row_id = stored.pop(event.id, None)  # a repeat within the batch is not new
            if row_id is not None and self.is_handled(event.type):
                tasks.append((event, row_id))
            receipt = Receipt(event.id, event.type, row_id is not None, row_id)
            if answer_first:
                _settle(future, receipt)
            else:
                later.append((future, receipt))
        if tasks or later:
            self._handoffs.put((tasks, later))

    def _insert(self, events: list[VerifiedEvent]) -> dict[str, int]:
        """Store and commit the events not stored yet; {event_id: row id} of those this call
        stored (a repeat, already stored or earlier in `events`, is left out)."""
        return self._inbox.insert(self.db, events, handled=self.is_handled, now=self.clock())

    # --- the dispatcher thread -----------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            first = self._handoffs.get()
            if first is None:
                return
            tasks, later = list(first[0]), list(first[1])
            stop = False
            while True:  # what was committed meanwhile goes over together
                try:
                    more = self._handoffs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                tasks.extend(more[0])
                later.extend(more[1])
            self._hand_over(tasks)
            for future, receipt in later:
                _settle(future, receipt)
            if stop:
                return

    def _hand_over(self, tasks: list[tuple[VerifiedEvent, int]]) -> None:
        """Give the committed rows to the task runner: together when it takes many at once
        (one broker message for several rows), else one by one. A failure is logged: the
        rows are in the inbox, and the sweep dispatches them later."""
        if len(tasks) > 1 and isinstance(self.runner, BatchTaskRunner):
            try:
                self.runner.submit_many([row_id for _, row_id in tasks])
            except Exception:
                log.exception("could not hand %d webhooks to the task runner; the sweep will",
                              len(tasks))
            return
        for event, row_id in tasks:
            try:
                self.runner.submit(row_id)
            except Exception:
                log.exception("could not hand webhook %s to the task runner; the sweep will",
                              event.id)


def _settle(future: Future[Receipt], receipt: Receipt | None = None,
            error: BaseException | None = None) -> None:
    """Resolve `future` unless its waiter gave up (a cancelled future takes no result)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(receipt)  # type: ignore[arg-type]
    except InvalidStateError:
        pass

