"""A worker SIGKILLed mid-handling: the event is handled after restart, and its effect is there
exactly once (the killed worker's writes were never committed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from meterbill.adapters.db.inbox import InboxRepository, NoticeRepository
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents
from meterbill.domain.clock import utcnow
from meterbill.ports.webhooks import parse_event

from .conftest import fake_event

SCRIPT = Path(__file__).with_name("worker_process.py")


def test_killed_worker_event_is_handled_once_after_restart(
        hooks: WebhookComponents, container: Container, tmp_path: Path) -> None:
    # The worker process handles product.created; here it only has to count as handled.
    hooks.processor.handlers = {"product.created": lambda ctx, event: "unused"}
    receipt = hooks.intake.store(parse_event(fake_event("product.created")))
    assert receipt.row_id is not None
    url = container.settings.database_url
    marker = tmp_path / "handling"
    worker = subprocess.Popen([sys.executable, str(SCRIPT), url, str(marker), "hang"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, "the worker never started handling"
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(10) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        for stream in (worker.stdout, worker.stderr):
            if stream is not None:
                stream.close()
    with container.db.session() as session:
        row = InboxRepository(session).get(receipt.row_id)
        assert row is not None and row.status == "processing" and row.attempts == 1
        assert NoticeRepository(session).all("effect") == []  # rolled back with the process
        claimed_until = row.claimed_until
    assert claimed_until is not None
    while utcnow() <= claimed_until:  # the dead worker's lease runs out
        time.sleep(0.05)
    restarted = subprocess.run([sys.executable, str(SCRIPT), url, str(marker), "run"],
                               capture_output=True, text=True, timeout=60)
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.split() == ["handled"]
    with container.db.session() as session:
        row = InboxRepository(session).get(receipt.row_id)
        assert row is not None and row.status == "handled" and row.attempts == 2
        assert row.note == "handled by run"
        assert [n.detail for n in NoticeRepository(session).all("effect")] == ["run"]
