"""The default task runner: a thread pool inside `meterbill serve` (its sweep: bootstrap/jobs.py).

Jobs are row ids; the inbox row is the job's only state, so nothing is lost if the process dies
with jobs queued: the sweep (here, in whichever process runs next) dispatches them again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger("meterbill.webhooks")


class InlineTaskRunner:
    def __init__(self, process: Callable[[int], Any], workers: int = 4) -> None:
        self._process = process
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers),
                                        thread_name_prefix="meterbill-webhook")
        self._pending: set[Future[Any]] = set()
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, row_id: int) -> None:
        with self._lock:
            if self._closed:
                return  # shutting down: the sweep of the next process picks the row up
            future = self._pool.submit(self._run, row_id)
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _run(self, row_id: int) -> Any:
        try:
            return self._process(row_id)
        except Exception:  # the processor records handler errors; this is anything else
            log.exception("processing webhook row %s failed", row_id)
            return None

    def _done(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted job has run (tests, benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                return True
            for future in pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                try:
                    future.result(timeout=left)
                except TimeoutError:
                    return False

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)


class SyncTaskRunner:
    """Runs each job at once in the caller's thread: CLI commands (`webhooks replay`)."""

    def __init__(self, process: Callable[[int], Any]) -> None:
        self._process = process
        self.results: list[Any] = []

    def submit(self, row_id: int) -> None:
        self.results.append(self._process(row_id))

    def close(self) -> None:
        pass
