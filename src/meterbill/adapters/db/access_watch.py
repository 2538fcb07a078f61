"""Every committed change of a tenant's access, found where it is written.

Access is written in several places (the dunning service, the subscription service, the
webhook handlers' status sync): rather than asking each to remember, the ORM tells us. Before
each flush the access columns' previous values of every changed tenant row are kept (the first
time the row changes in the transaction); just before commit the tenant's access then is
compared with it, and a change is handed to `record` in the same transaction, so an outgoing
event exists exactly when the change commits. Intermediate states inside one transaction are
never reported. Writes that bypass the ORM (Core `UPDATE`s of the access columns) are not seen:
meterbill makes none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from ...domain.policies import AccessDecision, effective_access
from .models import Tenant
from .session import Database

ACCESS_COLUMNS = ("billing_status", "soft_suspended", "api_access_enabled",
                  "rate_limit_multiplier")
_BEFORE = "meterbill.access_before"

Record = Callable[[Session, Tenant, AccessDecision, AccessDecision], None]


def access_of(values: dict[str, Any]) -> AccessDecision:
    """The access that values of `ACCESS_COLUMNS` give."""
    return effective_access(values["billing_status"],
                            soft_suspended=bool(values["soft_suspended"]),
                            api_access_enabled=bool(values["api_access_enabled"]),
                            rate_limit_multiplier=values["rate_limit_multiplier"])


def watch_access_changes(db: Database, record: Record) -> None:
    """Call `record(session, tenant, before, after)` for each tenant whose access (level or
    rate-limit multiplier) a transaction changes, just before it commits."""

    def before_flush(session: Session, _context: Any, _instances: Any) -> None:
        before: dict[int, tuple[Tenant, AccessDecision]] = session.info.setdefault(_BEFORE, {})
        for obj in session.dirty:
            if not isinstance(obj, Tenant) or obj.id is None or obj.id in before:
                continue
            state = inspect(obj)
            old: dict[str, Any] = {}
            changed = False
            for name in ACCESS_COLUMNS:
                history = state.attrs[name].history
                if history.deleted:
                    old[name], changed = history.deleted[0], True
                else:
                    old[name] = getattr(obj, name)
            if changed:
                before[obj.id] = (obj, access_of(old))

    def before_commit(session: Session) -> None:
        session.flush()  # what is still pending is recorded by before_flush first
        pending: dict[int, tuple[Tenant, AccessDecision]] = session.info.pop(_BEFORE, {})
        for tenant, old in pending.values():
            new = access_of({name: getattr(tenant, name) for name in ACCESS_COLUMNS})
            if (new.access, new.rate_limit_multiplier) != (old.access,
                                                          old.rate_limit_multiplier):
                record(session, tenant, old, new)

    def after_rollback(session: Session) -> None:
        session.info.pop(_BEFORE, None)

    db.listen("before_flush", before_flush)
    db.listen("before_commit", before_commit)
    db.listen("after_soft_rollback", lambda session, _previous: after_rollback(session))
