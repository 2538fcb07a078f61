"""Delivery through a real SMTP server (aiosmtpd) and a real HTTP receiver for alerts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import stripe

from meterbill.adapters.db.notifications import NoticeRepository
from meterbill.adapters.mailer import InvalidSmtpUrl, SmtpConfig
from meterbill.bootstrap import Container
from meterbill.domain.clock import utcnow
from meterbill.services.notifications.outbox import NotificationSender, admin_alert
from stripe_sandbox import Sandbox

from ..conftest import make_container, make_settings
from ..smtp import SmtpServer, free_port
from .conftest import ADMIN, AlertReceiver, add_tenant, enqueue, reminder


def status_of(container: Container, dedupe_key: str) -> tuple[str, int, str | None]:
    with container.db.session() as session:
        row = NoticeRepository(session).by_key(dedupe_key)
        assert row is not None
        return row.status, row.attempts, row.last_error


def test_an_email_arrives_with_recipient_subject_amount_and_links(
        mail_container: Container, smtp_server: SmtpServer,
        stripe_client: stripe.StripeClient) -> None:
    add_tenant(mail_container, stripe_client)
    enqueue(mail_container, reminder())
    report = mail_container.notifications.send_due()
    assert (report.sent, report.retrying, report.failed) == (1, 0, 0)
    [message] = smtp_server.wait_for(1)
    assert message.rcpt_tos == ["ap@acme.test"]
    assert message.mail_from == "billing@meterbill.test"
    assert message.message["From"] == "Billing <billing@meterbill.test>"
    assert message.subject == "Your payment of $49.00 did not go through"
    assert "$49.00" in message.text and "4 December 2026" in message.text
    assert "https://invoice.example/i/in_1?x=1&y=2" in message.text
    assert "http://127.0.0.1:8000/billing/portal/acme?expires=" in message.text
    assert 'href="https://invoice.example/i/in_1?x=1&amp;y=2"' in message.html
    assert status_of(mail_container, "dunning:acme:1:in_1") == ("sent", 1, None)
    assert mail_container.notifications.send_due().sent == 0  # sent once only
    assert len(smtp_server.messages) == 1


def test_smtp_trouble_keeps_it_pending_then_it_is_delivered_once(
        mail_container: Container, smtp_server: SmtpServer) -> None:
    enqueue(mail_container, reminder())
    smtp_server.failing = True
    report = mail_container.notifications.send_due()
    assert report.retrying == 1 and "451" in report.errors[0]
    status, attempts, error = status_of(mail_container, "dunning:acme:1:in_1")
    assert (status, attempts) == ("pending", 1) and error is not None and "451" in error
    assert mail_container.notifications.send_due().sent == 0  # not due yet: backoff
    smtp_server.failing = False
    later = utcnow() + timedelta(minutes=5)
    assert mail_container.notifications.send_due(later).sent == 1
    assert len(smtp_server.wait_for(1)) == 1
    assert status_of(mail_container, "dunning:acme:1:in_1") == ("sent", 2, None)
    assert mail_container.notifications.send_due(later + timedelta(hours=1)).sent == 0


def test_smtp_down_then_failed_after_the_attempt_limit(database_url: str,
                                                       sandbox: Sandbox) -> None:
    nobody = f"smtp://127.0.0.1:{free_port()}"  # nothing listens there
    container = make_container(make_settings(database_url, smtp_url=nobody,
                                             notification_max_attempts=3), sandbox, sync=False)
    try:
        enqueue(container, reminder())
        moment = utcnow()
        outcomes = []
        for _ in range(3):
            report = container.notifications.send_due(moment)
            outcomes.append((report.retrying, report.failed))
            moment += timedelta(hours=3)  # past any backoff
        assert outcomes == [(1, 0), (1, 0), (0, 1)]
        status, attempts, error = status_of(container, "dunning:acme:1:in_1")
        assert (status, attempts) == ("failed", 3)
        assert error is not None and "unreachable" in error and "ConnectionRefused" in error
    finally:
        container.close()


def test_two_senders_at_once_send_it_once(mail_container: Container,
                                          smtp_server: SmtpServer) -> None:
    for n in range(5):
        enqueue(mail_container, reminder(dedupe_key=f"k{n}"))
    senders = [NotificationSender(mail_container.db, mail_container.notifications.sender.mailer,
                                  None) for _ in range(3)]
    start = threading.Barrier(len(senders))

    def run(sender: NotificationSender) -> None:
        start.wait()
        sender.send_due()

    threads = [threading.Thread(target=run, args=(s,)) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(smtp_server.wait_for(5)) == 5
    assert sorted(mail_container.notifications.counts().items()) == sorted(
        {**dict.fromkeys(mail_container.notifications.counts(), 0), "sent": 5}.items())


@pytest.fixture
def alerting(database_url: str, sandbox: Sandbox, smtp_server: SmtpServer,
             alert_receiver: AlertReceiver) -> Iterator[Container]:
    settings = make_settings(database_url, smtp_url=smtp_server.url, admin_emails=ADMIN,
                             alert_webhook_url=alert_receiver.url)
    container = make_container(settings, sandbox, sync=False)
    try:
        yield container
    finally:
        container.close()


def test_admin_alerts_go_to_email_and_the_alert_webhook(
        alerting: Container, smtp_server: SmtpServer, alert_receiver: AlertReceiver) -> None:
    alert = admin_alert("drift:acme:2026-11-20", "Usage drift for acme",
                        "Stripe has 10 units fewer than the ledger for acme.",
                        tenant_id="acme")
    assert enqueue(alerting, alert) is True
    assert enqueue(alerting, alert) is False
    alert_receiver.fail = 1  # the first post fails: retried like email
    first = alerting.notifications.send_due()
    assert (first.sent, first.retrying) == (1, 1)
    [message] = smtp_server.wait_for(1)
    assert message.rcpt_tos == [ADMIN]
    assert message.subject == "[meterbill] Usage drift for acme"
    assert "10 units fewer" in message.text
    later = utcnow() + timedelta(minutes=5)
    assert alerting.notifications.send_due(later).sent == 1
    [post] = alert_receiver.posts
    assert "Usage drift for acme" in post["text"] and "10 units fewer" in post["text"]
    views = alerting.notifications.list()
    assert {(v.channel, v.status, v.recipient) for v in views} == {
        ("email", "sent", ADMIN), ("webhook", "sent", "ALERT_WEBHOOK_URL")}
    # The webhook URL is a secret: it is not in the outbox or its errors.
    with alerting.db.session() as session:
        for row in NoticeRepository(session).all():
            assert alert_receiver.url not in f"{row.recipient} {row.last_error} {row.facts}"


@pytest.mark.parametrize("url, expected", [
    ("smtp://mail.example.com", SmtpConfig("mail.example.com", 25)),
    ("smtps://u%40x:p%3Aw@mail.example.com", SmtpConfig("mail.example.com", 465, tls=True,
                                                        username="u@x", password="p:w")),
    ("smtp://u:p@mail.example.com:587?starttls=true&timeout=3",
     SmtpConfig("mail.example.com", 587, starttls=True, username="u", password="p",
                timeout=3.0)),
])
def test_smtp_urls(url: str, expected: SmtpConfig) -> None:
    assert SmtpConfig.parse(url) == expected


@pytest.mark.parametrize("url, message", [
    ("http://mail.example.com", "must start with smtp:// or smtps://"),
    ("smtp://", "names no host"),
    ("smtps://h?starttls=true", "TLS already"),
])
def test_bad_smtp_urls_say_how_to_fix_them(url: str, message: str) -> None:
    with pytest.raises(InvalidSmtpUrl, match=message):
        SmtpConfig.parse(url)
