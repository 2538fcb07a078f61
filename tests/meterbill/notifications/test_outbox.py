"""The outbox on SQLite and PostgreSQL: rendered at enqueue, once per dedupe key, and the
status each notice starts in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from meterbill.adapters.db.migrate import current_revision, downgrade, upgrade
from meterbill.adapters.db.notifications import NoticeRepository
from meterbill.adapters.db.session import Database
from meterbill.bootstrap import Container
from meterbill.ports.notify import MissingFacts, Notice
from meterbill.services.notifications.outbox import admin_alert
from stripe_sandbox import Sandbox

from ..conftest import make_container, make_settings
from .conftest import ADMIN, enqueue, reminder


@pytest.fixture
def held_container(database_url: str, sandbox: Sandbox) -> Iterator[Container]:
    """No SMTP_URL (sandbox mode as shipped): everything is held."""
    built = make_container(make_settings(database_url), sandbox, sync=False)
    try:
        yield built
    finally:
        built.close()


def rows(container: Container) -> list[dict[str, object]]:
    with container.db.session() as session:
        return [{"key": r.dedupe_key, "kind": r.kind, "status": r.status, "channel": r.channel,
                 "recipient": r.recipient, "subject": r.subject, "text": r.body_text,
                 "html": r.body_html, "error": r.last_error, "facts": r.facts}
                for r in NoticeRepository(session).all()]


def test_enqueue_twice_records_once(mail_container: Container) -> None:
    assert enqueue(mail_container, reminder()) is True
    assert enqueue(mail_container, reminder()) is False  # the same event processed again
    [row] = rows(mail_container)
    assert row["status"] == "pending" and row["recipient"] == "ap@acme.test"
    assert row["subject"] == "Your payment of $49.00 did not go through"
    text = str(row["text"])
    assert "$49.00" in text and "https://invoice.example/i/in_1?x=1&y=2" in text
    assert "/billing/portal/acme?expires=" in text  # the card-update link, made at enqueue
    facts = row["facts"]
    assert isinstance(facts, dict) and facts["amount_due"] == 4900
    assert str(facts["portal_url"]).startswith("http://127.0.0.1:8000/billing/portal/acme")


def test_concurrent_transactions_record_one_row(mail_container: Container) -> None:
    # Two transactions race on one key: the unique index lets one through.
    db = mail_container.db
    with db.session() as first, db.session() as second:
        assert mail_container.notifier.enqueue(first, reminder()) is True
        first.commit()
        assert mail_container.notifier.enqueue(second, reminder()) is False
    assert len(rows(mail_container)) == 1


def test_a_notice_rolls_back_with_its_transaction(mail_container: Container) -> None:
    with pytest.raises(RuntimeError), mail_container.db.session() as session:
        mail_container.notifier.enqueue(session, reminder())
        raise RuntimeError("the state change failed")
    assert rows(mail_container) == []


def test_without_smtp_emails_are_held(held_container: Container) -> None:
    assert enqueue(held_container, reminder()) is True
    [row] = rows(held_container)
    assert row["status"] == "held" and row["subject"] and row["text"]
    assert held_container.notifications.send_due().sent == 0
    assert rows(held_container)[0]["status"] == "held"


def test_missing_facts_raise_before_anything_is_written(mail_container: Container) -> None:
    notice = reminder()
    broken = Notice(kind=notice.kind, dedupe_key=notice.dedupe_key, tenant_id="acme",
                    detail="x", facts={k: v for k, v in notice.facts.items()
                                       if k != "amount_due"})
    with pytest.raises(MissingFacts, match="amount_due"):
        enqueue(mail_container, broken)
    assert rows(mail_container) == []


def test_a_tenant_without_email_is_recorded_as_failed(mail_container: Container) -> None:
    enqueue(mail_container, reminder(email=None))
    [row] = rows(mail_container)
    assert row["status"] == "failed" and row["error"] == "tenant acme has no email address"
    assert row["text"]  # still shows what would have been said


def test_kinds_without_templates_are_recorded_only(mail_container: Container) -> None:
    notice = Notice(kind="payment_method_on_file", dedupe_key="pm:1", tenant_id="acme",
                    detail="Payment method pm_1 is on file.")
    assert enqueue(mail_container, notice) is True
    [row] = rows(mail_container)
    assert row["status"] == "recorded" and row["text"] is None and row["recipient"] is None


def test_admin_alerts_go_to_admin_emails(mail_container: Container) -> None:
    enqueue(mail_container, admin_alert("drift:acme:2026-11-20", "Usage drift for acme",
                                        "Stripe has 10 units fewer than the ledger."))
    [row] = rows(mail_container)
    assert row["recipient"] == ADMIN and row["status"] == "pending"
    assert row["subject"] == "[meterbill] Usage drift for acme"
    assert "portal" not in str(row["text"])  # no customer links in an operator's alert


def test_admin_alerts_without_recipients_are_held(held_container: Container) -> None:
    enqueue(held_container, admin_alert("k", "Subject", "Detail."))
    [row] = rows(held_container)
    assert row["status"] == "held"
    assert row["error"] == "ADMIN_EMAILS is not set: nobody to send admin alerts to"


def test_a_broken_override_records_a_failed_notice(database_url: str, sandbox: Sandbox,
                                                   tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "dunning_reminder.txt").write_text(
        '{% extends "email/_layout.txt" %}{% block subject %}{{ oops }}{% endblock %}')
    container = make_container(make_settings(database_url, templates_dir=tmp_path,
                                             smtp_url="smtp://127.0.0.1:1"), sandbox,
                               sync=False)
    try:
        assert enqueue(container, reminder()) is True  # dunning goes on; the row says why
        [row] = rows(container)
        assert row["status"] == "failed" and "oops" in str(row["error"])
    finally:
        container.close()


def test_migration_0005_adds_and_removes_the_outbox_columns(database_url: str) -> None:
    db = Database(database_url)
    try:
        upgrade(db.engine, "0004")
        with db.engine.begin() as connection:  # a notice recorded before the outbox existed
            connection.execute(text(
                "INSERT INTO billing_notices (dedupe_key, kind, detail, created_at) "
                "VALUES ('old', 'trial_ending_no_payment_method', 'x', CURRENT_TIMESTAMP)"))
        upgrade(db.engine, "0005")
        columns = {c["name"] for c in inspect(db.engine).get_columns("billing_notices")}
        assert {"recipient", "subject", "body_text", "body_html", "facts", "status",
                "attempts", "last_error", "next_attempt_at", "channel"} <= columns
        with db.engine.connect() as connection:
            status, attempts = connection.execute(text(
                "SELECT status, attempts FROM billing_notices")).one()
        assert (status, attempts) == ("recorded", 0)  # old notices are never sent
        downgrade(db.engine, "0004")
        assert current_revision(db.engine) == "0004"
        columns = {c["name"] for c in inspect(db.engine).get_columns("billing_notices")}
        assert "status" not in columns and "dedupe_key" in columns
    finally:
        db.dispose()
