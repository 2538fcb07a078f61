"""The id every log line of one piece of work carries (`request_id`): an API request's (its
`X-Request-Id`, or a new one), a webhook event's processing (the event's id) or a job run's.
Set with `bound(...)`; read by the log formatter (adapters/log_format.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("meterbill_request_id", default=None)


@contextmanager
def bound(value: str) -> Iterator[None]:
    token = request_id.set(value)
    try:
        yield
    finally:
        request_id.reset(token)
