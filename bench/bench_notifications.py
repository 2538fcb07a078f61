"""Notifications: how fast notices are recorded (rendered) and delivered over SMTP.

1. Enqueue: `OutboxNotifier.enqueue` of N `dunning_warning` notices, each rendered from its
   Jinja2 templates (text + HTML + signed portal link) and inserted, one transaction per
   notice as a webhook handler does; against inserting the same rows unrendered
   (`RecordOnlyNotifier`), to show what rendering costs. Then N repeats of already recorded
   keys (a replayed event: render, then ON CONFLICT DO NOTHING).
2. Delivery: `send_due` of those N rows to an aiosmtpd server on 127.0.0.1 (one SMTP
   connection per message, as the mailer does), messages per second.

SQLite (a temporary file) always; PostgreSQL too when METERBILL_TEST_DATABASE_URL is set (a
schema of its own, dropped afterwards). Needs the dev extra (aiosmtpd).

Run: `python bench/bench_notifications.py [--n 2000]`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from meterbill.adapters.db.migrate import upgrade
from meterbill.adapters.db.session import Database
from meterbill.adapters.email_templates import EmailRenderer
from meterbill.adapters.mailer import SmtpConfig, SmtpMailer
from meterbill.ports.notify import Notice
from meterbill.services.notifications.outbox import (
    NotificationSender,
    OutboxNotifier,
    RecordOnlyNotifier,
)
from meterbill.services.notifications.portal_links import PortalLinks, derive_secret


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def notice(i: int, run: str) -> Notice:
    return Notice(kind="dunning_warning", dedupe_key=f"dunning:{run}:t{i}:2:in_{i}",
                  tenant_id=f"tenant_{i:05d}", detail="second failure", facts={
                      "tenant_name": f"Tenant {i} <Ltd>", "email": f"billing{i}@example.com",
                      "amount_due": 4900 + i, "currency": "usd", "invoice_id": f"in_{i}",
                      "invoice_url": f"https://invoice.example/i/in_{i}",
                      "attempt_count": 2, "next_step": "final_warning",
                      "next_step_at": "2026-12-04T10:00:00+00:00",
                      "suspension_at": "2026-12-08T00:00:00+00:00", "plan": "pro"})


def timed_enqueue(db: Database, notifier: Any, notices: list[Notice]) -> tuple[float, int]:
    added = 0
    started = time.perf_counter()
    for item in notices:
        with db.session() as session:
            added += notifier.enqueue(session, item)
    return time.perf_counter() - started, added


def databases() -> Iterator[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        yield "SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}"
    base = os.environ.get("METERBILL_TEST_DATABASE_URL")
    if not base:
        return
    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield "PostgreSQL", url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run(label: str, url: str, n: int) -> None:
    db = Database(url)
    upgrade(db.engine)
    links = PortalLinks(derive_secret("bench-secret"), "https://billing.example",
                        timedelta(days=30))
    outbox = OutboxNotifier(EmailRenderer(), deliver_email=True, admin_emails=[],
                            alert_webhook=False, links=links,
                            public_base_url="https://billing.example")
    plain = [notice(i, "plain") for i in range(n)]
    rendered = [notice(i, "rendered") for i in range(n)]
    plain_s, plain_added = timed_enqueue(db, RecordOnlyNotifier(), plain)
    render_s, render_added = timed_enqueue(db, outbox, rendered)
    repeat_s, repeat_added = timed_enqueue(db, outbox, rendered)
    assert (plain_added, render_added, repeat_added) == (n, n, 0)
    print(f"{label}: record only {n / plain_s:,.0f}/s; rendered {n / render_s:,.0f}/s "
          f"({plain_s / render_s:.2f}× the unrendered rate, "
          f"{(render_s - plain_s) / n * 1000:.2f} ms of rendering each); "
          f"replayed keys {n / repeat_s:,.0f}/s (0 rows added)")

    counter = Counter()
    port = free_port()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        mailer = SmtpMailer(SmtpConfig.parse(f"smtp://127.0.0.1:{port}"),
                            "Billing <billing@example.com>")
        sender = NotificationSender(db, mailer, None)
        started = time.perf_counter()
        report = sender.send_due(limit=200)
        seconds = time.perf_counter() - started
    finally:
        controller.stop()
    assert report.sent == n and counter.count == n, (report, counter.count)
    print(f"{label}: delivered {n} emails over SMTP in {seconds:.2f} s = {n / seconds:,.0f}/s "
          f"({seconds / n * 1000:.2f} ms each: claim, connect, send, record)")
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    for label, url in databases():
        run(label, url, args.n)


if __name__ == "__main__":
    main()
