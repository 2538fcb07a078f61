"""Telling people something: the `Notifier` and the `Notice` it takes, the email templates that
word a notice, and the channels that deliver it (mail, alert and access webhooks).

A notice is recorded in the outbox inside the caller's transaction (so it commits, or not,
together with the state change that caused it) and delivered after the commit. Its
`dedupe_key` makes it once-only: an event processed twice records it once.

Implementations: `services.notifications.OutboxNotifier` (the notifier),
`adapters.email_templates.EmailRenderer` (templates), `adapters.mailer.SmtpMailer` and
`AlertWebhook`, `adapters.outgoing_webhooks.SignedWebhook`. Bootstrap picks them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

# The caller's database session, opaque here (adapters.db.session.DbSession): the notifier
# records the notice in its transaction.
Transaction = Any


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
    at: datetime | None = None  # when it happened on Stripe's clock (a test clock's); None: now


class Notifier(Protocol):
    def enqueue(self, session: Transaction, notice: Notice) -> bool:
        """Record `notice` in the caller's transaction; False when its key was already there."""
        ...


# --- wording: the email templates -------------------------------------------------------------

@dataclass(frozen=True)
class KindSpec:
    """What a notice kind's templates need, and whom it goes to."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    to_admin: bool = False


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class MissingFacts(ValueError):
    """A notice lacks facts its templates need (a caller's mistake: say which)."""


class TemplateFailure(RuntimeError):
    """A template (usually an operator's override) failed to render."""


class NoticeRenderer(Protocol):
    def spec(self, kind: str) -> KindSpec | None:
        """The kind's facts and audience; None for a kind without templates (never sent)."""
        ...

    def render(self, kind: str, facts: Mapping[str, Any]) -> RenderedEmail:
        """Raise `MissingFacts` for an absent required fact, `TemplateFailure` for a broken
        template; otherwise the email."""
        ...


# --- delivery ---------------------------------------------------------------------------------

class DeliveryError(Exception):
    """A message could not be delivered this time (the sender retries later). Its message is
    fit for the outbox's `last_error`: never a password or a secret URL."""


class PartialDelivery(DeliveryError):
    """Delivered to some recipients, refused for others: not retried."""


class MailPort(Protocol):
    def send(self, to: Sequence[str], subject: str, text: str,
             html: str | None = None) -> None:
        """Send one email; `DeliveryError` when it did not go, `ValueError` for an address
        that is not one."""
        ...


class AlertPort(Protocol):
    def post(self, text: str) -> None:
        """Post one message (an admin alert, or a signed access event); `DeliveryError`."""
        ...


class LinkPort(Protocol):
    def url_for(self, tenant_id: str, page: str = "portal") -> str:
        """A link to the tenant's billing portal (or, `page="billing"`, its billing page) that
        stays valid inside an email."""
        ...
