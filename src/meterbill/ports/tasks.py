"""The task runner: runs `process(row_id)` for webhook inbox rows later, elsewhere.

Adapters: `adapters.tasks.inline.InlineTaskRunner` (a thread pool in this process, the default)
and `adapters.tasks.celery_app.CeleryTaskRunner` (a broker and `meterbill worker` processes).
The inbox stays the source of truth: a row the runner loses is dispatched again by the sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


class TaskRunner(Protocol):
    def submit(self, row_id: int) -> None:
        """Arrange for inbox row `row_id` to be processed soon. Call only after its commit."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class BatchTaskRunner(Protocol):
    """A task runner that also takes many rows in one call (Celery: fewer messages)."""

    def submit_many(self, row_ids: Sequence[int]) -> None: ...
