"""Notifications: record a notice in the outbox (rendered), deliver it after the commit.

- `OutboxNotifier.enqueue(session, notice)` (the `Notifier` port) renders the notice's
  templates and inserts the row in the caller's transaction, once per `dedupe_key`. Admin
  alerts get a second row for ALERT_WEBHOOK_URL when it is set, delivered and retried on its
  own.
- `NotificationSender` delivers pending rows: it claims a row (so two senders never send it
  twice), sends it outside any transaction, and records the outcome. A failed attempt stays
  `pending` with `last_error` and a backoff; after `max_attempts` the row is `failed` and an
  error is logged. A sender that dies between sending and recording leaves its claim to run
  out, and the row is sent again: delivery is at least once, as SMTP offers no better.
- Without SMTP_URL nothing is sent: emails are recorded `held` and stay in the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ...adapters.db.notifications import BillingNotice, NoticeRepository
from ...adapters.db.session import Database, DbSession
from ...domain.clock import Clock, utcnow
from ...domain.errors import NotFound
from ...ports.notify import (
    AlertPort,
    DeliveryError,
    LinkPort,
    MailPort,
    Notice,
    NoticeRenderer,
    PartialDelivery,
    TemplateFailure,
)

log = logging.getLogger("meterbill.notifications")

ALERT_WEBHOOK = "ALERT_WEBHOOK_URL"  # the recipient shown for webhook rows (the URL is secret)

def admin_alert(dedupe_key: str, subject: str, detail: str, *, tenant_id: str | None = None,
                event_id: str | None = None) -> Notice:
    """An alert for the operators (ADMIN_EMAILS and ALERT_WEBHOOK_URL)."""
    return Notice(kind="admin_alert", dedupe_key=dedupe_key, tenant_id=tenant_id,
                  detail=detail, facts={"subject": subject, "detail": detail},
                  event_id=event_id, to_admin=True)


def jsonable(value: Any) -> Any:
    """Facts as stored in the outbox's JSON column (dates as ISO text, Decimals as text)."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _first_sentence(text: str, limit: int = 120) -> str:
    line = text.strip().split("\n", 1)[0]
    sentence = line.split(". ", 1)[0].rstrip(".")
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


class RecordOnlyNotifier:
    """Records notices without rendering or sending them (processors built without wiring)."""

    def enqueue(self, session: DbSession, notice: Notice) -> bool:
        return NoticeRepository(session).insert(
            dedupe_key=notice.dedupe_key, kind=notice.kind, detail=notice.detail,
            tenant_id=notice.tenant_id, event_id=notice.event_id,
            facts=jsonable(notice.facts) or None, to_admin=notice.to_admin) is not None


class OutboxNotifier:
    """The `Notifier`: renders at enqueue time and inserts once per dedupe key."""

    def __init__(self, renderer: NoticeRenderer, *, deliver_email: bool,
                 admin_emails: Sequence[str], alert_webhook: bool,
                 links: LinkPort | None, public_base_url: str) -> None:
        self.renderer = renderer
        self.deliver_email = deliver_email
        self.admin_emails = list(admin_emails)
        self.alert_webhook = alert_webhook
        self.links = links
        self.public_base_url = public_base_url.rstrip("/")

    def enqueue(self, session: DbSession, notice: Notice) -> bool:
        """Record `notice`; False when its key was there. `MissingFacts` when the notice
        lacks a fact its templates need (a caller's mistake, raised before anything is
        written)."""
        repo = NoticeRepository(session)
        common: dict[str, Any] = {"dedupe_key": notice.dedupe_key, "kind": notice.kind,
                                  "detail": notice.detail, "tenant_id": notice.tenant_id,
                                  "event_id": notice.event_id, "created_at": notice.at}
        spec = self.renderer.spec(notice.kind)
        if spec is None:  # no templates: a fact for the console and the timeline only
            return repo.insert(**common, status="recorded", to_admin=notice.to_admin,
                               facts=jsonable(notice.facts) or None) is not None
        to_admin = notice.to_admin or spec.to_admin
        facts = self._facts(notice, to_admin)
        row = self._rendered(notice.kind, facts)
        row.update(self._addressing(notice, facts, to_admin, row["status"]))
        notice_id = repo.insert(**common, to_admin=to_admin, channel="email",
                                facts=jsonable(facts), **row)
        if notice_id is None:
            return False
        if to_admin and self.alert_webhook and row.get("body_text"):
            repo.insert(**{**common, "dedupe_key": f"{notice.dedupe_key}#webhook"},
                        to_admin=True, channel="webhook", recipient=ALERT_WEBHOOK,
                        subject=row["subject"], body_text=row["body_text"],
                        facts=jsonable(facts), status="pending")
        log.info("notice %s (%s) recorded for %s: %s", notice.dedupe_key, notice.kind,
                 "admins" if to_admin else notice.tenant_id, row["status"])
        return True

    def _facts(self, notice: Notice, to_admin: bool) -> dict[str, Any]:
        facts = dict(notice.facts)
        if notice.kind == "admin_alert":
            facts.setdefault("detail", notice.detail)
            facts.setdefault("subject", _first_sentence(notice.detail))
        facts.setdefault("tenant_id", notice.tenant_id)
        facts.setdefault("public_base_url", self.public_base_url)
        if not to_admin and notice.tenant_id and self.links is not None:
            facts.setdefault("portal_url", self.links.url_for(notice.tenant_id))
            facts.setdefault("billing_url", self.links.url_for(notice.tenant_id, "billing"))
        return facts

    def _rendered(self, kind: str, facts: Mapping[str, Any]) -> dict[str, Any]:
        try:
            email = self.renderer.render(kind, facts)  # MissingFacts propagates
        except TemplateFailure as error:
            # Most likely an operator's override: record the notice, say why it was not sent.
            log.error("notice %s could not be rendered: %s", kind, error)
            return {"status": "failed", "last_error": f"template: {error}"}
        return {"status": "pending", "subject": email.subject, "body_text": email.text,
                "body_html": email.html}

    def _addressing(self, notice: Notice, facts: Mapping[str, Any], to_admin: bool,
                    status: str) -> dict[str, Any]:
        if to_admin:
            recipients = self.admin_emails
            missing = "ADMIN_EMAILS is not set: nobody to send admin alerts to"
        else:
            address = facts.get("email")
            recipients = [str(address)] if address else []
            missing = f"tenant {notice.tenant_id} has no email address"
        values: dict[str, Any] = {"recipient": ", ".join(recipients) or None}
        if status != "pending":
            return values
        if not recipients:
            values.update(status="held" if to_admin else "failed", last_error=missing)
        elif not self.deliver_email:
            values.update(status="held", last_error=None)
        return values


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        self.skipped += other.skipped
        self.errors.extend(other.errors)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class NotificationSender:
    def __init__(self, db: Database, mailer: MailPort | None, alerts: AlertPort | None, *,
                 access_webhook: AlertPort | None = None,
                 max_attempts: int = 8, clock: Clock = utcnow,
                 lease: timedelta = timedelta(minutes=5),
                 retry_base: timedelta = timedelta(seconds=30),
                 retry_max: timedelta = timedelta(hours=2)) -> None:
        self.db = db
        self.mailer = mailer
        self.alerts = alerts
        self.access_webhook = access_webhook  # tenant.access_changed (access_webhooks.py)
        self.max_attempts = max(1, max_attempts)
        self.clock = clock
        self.lease = lease
        self.retry_base = retry_base
        self.retry_max = retry_max

    def retry_delay(self, attempts: int) -> timedelta:
        """30 s, 1 min, 2 min, ... doubling after each failed attempt, at most `retry_max`."""
        delay: timedelta = self.retry_base * (2 ** min(max(0, attempts - 1), 20))
        return min(delay, self.retry_max)

    def send_due(self, now: datetime | None = None, limit: int = 100) -> DeliveryReport:
        """Deliver every row due at `now` (all of them, `limit` at a time)."""
        now = now or self.clock()
        report = DeliveryReport()
        while True:
            with self.db.session() as session:
                ids = NoticeRepository(session).due_ids(now=now, limit=limit)
            batch = self.send_ids(ids, now=now)
            report.add(batch)
            if len(ids) < limit or batch.skipped == len(ids):
                return report

    def send_ids(self, ids: Sequence[int], now: datetime | None = None) -> DeliveryReport:
        report = DeliveryReport()
        for notice_id in ids:
            outcome, error = self._send_one(notice_id, now or self.clock())
            setattr(report, outcome, getattr(report, outcome) + 1)
            if error:
                report.errors.append(f"notice {notice_id}: {error}")
        return report

    def _send_one(self, notice_id: int, now: datetime) -> tuple[str, str | None]:
        until = now + self.lease
        with self.db.session() as session:
            repo = NoticeRepository(session)
            if not repo.claim(notice_id, now=now, until=until):
                return "skipped", None
            row = repo.get(notice_id)
            assert row is not None
            channel, recipient, attempts = row.channel, row.recipient, row.attempts
            subject, text, html = row.subject or "", row.body_text or "", row.body_html
            label = f"{row.kind} {row.dedupe_key}"
        try:
            self._deliver(channel, recipient, subject, text, html)
        except _NotConfigured as reason:
            self._finish(notice_id, until, status="held", error=str(reason))
            return "skipped", str(reason)
        except Exception as error:  # DeliveryError, or a bug: recorded and retried alike
            message = str(error) if isinstance(error, DeliveryError) else \
                f"{type(error).__name__}: {error}"
            if isinstance(error, PartialDelivery) or attempts >= self.max_attempts:
                self._finish(notice_id, until, status="failed", error=message)
                log.error("ALERT: notification %s (%s) failed after %d attempt(s): %s. Fix "
                          "the cause, then `meterbill notifications retry %s`.", notice_id,
                          label, attempts, message, notice_id)
                return "failed", message
            retry_at = now + self.retry_delay(attempts)
            self._finish(notice_id, until, status="pending", error=message,
                         next_attempt_at=retry_at)
            log.warning("notification %s (%s) attempt %d failed: %s; retry at %s", notice_id,
                        label, attempts, message, retry_at.isoformat())
            return "retrying", message
        self._finish(notice_id, until, status="sent", sent_at=max(now, self.clock()))
        log.info("notification %s (%s) sent to %s", notice_id, label, recipient)
        return "sent", None

    def _deliver(self, channel: str, recipient: str | None, subject: str, text: str,
                 html: str | None) -> None:
        if channel == "webhook":
            if self.alerts is None:
                raise _NotConfigured("ALERT_WEBHOOK_URL is not set")
            self.alerts.post(text)
            return
        if channel == "access_webhook":
            if self.access_webhook is None:
                raise _NotConfigured("ACCESS_WEBHOOK_URL is not set")
            self.access_webhook.post(text)
            return
        if self.mailer is None:
            raise _NotConfigured("SMTP_URL is not set")
        to = [address.strip() for address in (recipient or "").split(",") if address.strip()]
        try:
            self.mailer.send(to, subject, text, html)
        except ValueError as error:  # an address that is not one: retrying cannot help
            raise PartialDelivery(str(error)) from None

    def _finish(self, notice_id: int, until: datetime, **values: Any) -> None:
        with self.db.session() as session:
            if not NoticeRepository(session).finish(notice_id, claimed_until=until, **values):
                log.warning("notification %s: our claim ran out before the outcome was "
                            "recorded; another sender may send it again", notice_id)


class _NotConfigured(Exception):
    """The channel of a pending row is no longer configured: hold the row."""


@dataclass(frozen=True)
class NoticeView:
    id: int
    kind: str
    status: str
    channel: str
    tenant_id: str | None
    recipient: str | None
    subject: str | None
    detail: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None
    event_id: str | None
    dedupe_key: str
    to_admin: bool
    body_text: str | None = None
    body_html: str | None = None
    facts: dict[str, Any] | None = None

    @classmethod
    def of(cls, row: BillingNotice, *, full: bool = False) -> NoticeView:
        return cls(id=row.id, kind=row.kind, status=row.status, channel=row.channel,
                   tenant_id=row.tenant_id, recipient=row.recipient, subject=row.subject,
                   detail=row.detail, attempts=row.attempts, last_error=row.last_error,
                   created_at=row.created_at, sent_at=row.sent_at,
                   next_attempt_at=row.next_attempt_at, event_id=row.event_id,
                   dedupe_key=row.dedupe_key, to_admin=row.to_admin,
                   body_text=row.body_text if full else None,
                   body_html=row.body_html if full else None,
                   facts=row.facts if full else None)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("created_at", "sent_at", "next_attempt_at"):
            value = data[key]
            data[key] = value.isoformat() if value is not None else None
        return data


class NotificationService:
    """The outbox as the CLI, the API and the wiring see it."""

    def __init__(self, db: Database, notifier: OutboxNotifier, sender: NotificationSender,
                 *, delivery: str) -> None:
        self.db = db
        self.notifier = notifier
        self.sender = sender
        self.delivery = delivery  # "smtp", or "held" when nothing is sent (for the console)

    def list(self, *, status: str | None = None, tenant_id: str | None = None,
             kind: str | None = None, limit: int = 50) -> list[NoticeView]:
        with self.db.session() as session:
            rows = NoticeRepository(session).recent(status=status, tenant_id=tenant_id,
                                                    kind=kind, limit=limit)
            return [NoticeView.of(row) for row in rows]

    def get(self, notice_id: int) -> NoticeView:
        with self.db.session() as session:
            row = NoticeRepository(session).get(notice_id)
            if row is None:
                raise NotFound(f"No notification {notice_id}. List them with `meterbill "
                               "notifications list`.", code="unknown_notification")
            return NoticeView.of(row, full=True)

    def counts(self) -> dict[str, int]:
        with self.db.session() as session:
            return NoticeRepository(session).counts()

    def send_due(self, now: datetime | None = None) -> DeliveryReport:
        return self.sender.send_due(now)

    def retry(self, notice_id: int) -> bool:
        """Make a failed or held notice pending again; False when it cannot be."""
        with self.db.session() as session:
            return NoticeRepository(session).retry(notice_id)

    def after_commit(self, notice_ids: Sequence[int]) -> None:
        """Deliver what a transaction just recorded. Never raises: whatever is not sent now
        is sent by the periodic sender."""
        if not notice_ids:
            return
        try:
            self.sender.send_ids(notice_ids)
        except Exception:  # the database may be briefly away; the periodic sender retries
            log.exception("sending notices %s after commit failed", list(notice_ids))
