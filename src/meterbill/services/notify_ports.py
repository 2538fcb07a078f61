"""What services need to tell people something: the `Notifier` port and the `Notice` it takes.

A notice is recorded in the outbox inside the caller's transaction (so it commits, or not,
together with the state change that caused it) and delivered after the commit. Its
`dedupe_key` makes it once-only: an event processed twice records it once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Notice:
    kind: str  # what happened, and the template that says it (e.g. "dunning_reminder")
    dedupe_key: str  # once per key, e.g. "dunning:{tenant}:{step}:{invoice}"
    tenant_id: str | None
    detail: str  # one line for logs, the console and the admin timeline
    # Template variables: amounts in integer cents with `currency`, links, dates.
    facts: Mapping[str, Any] = field(default_factory=dict)
    event_id: str | None = None
    to_admin: bool = False  # True: goes to the admin recipients, not the tenant


class Notifier(Protocol):
    def enqueue(self, session: Session, notice: Notice) -> bool:
        """Record `notice` in the caller's transaction; False when its key was already there."""
        ...
