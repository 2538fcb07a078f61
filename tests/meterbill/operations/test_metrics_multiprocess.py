"""Several server processes, one `/metrics`: with PROMETHEUS_MULTIPROC_DIR each process writes
its counters there and a scrape in any process sums them all (prometheus-client's multiprocess
mode). Real processes, not threads: the mode exists because processes share nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

SRC = Path(__file__).resolve().parents[3] / "src"

COUNT = """
from meterbill.adapters.metrics import process_metrics
recorder = process_metrics()
recorder.count("usage_events_ingested", {n})
recorder.count("stripe_requests", operation="GET /v1/subscriptions", outcome="ok")
recorder.observe("job_seconds", 2.0, job="usage-sync")
"""

SCRAPE = """
import sys
from meterbill.adapters.metrics import scrape
body, _ = scrape(None)
sys.stdout.write(body.decode())
"""


def _python(code: str, directory: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout


def test_a_scrape_sums_every_process(tmp_path: Path) -> None:
    _python(COUNT.format(n=3), tmp_path)
    _python(COUNT.format(n=4), tmp_path)
    text = _python(SCRAPE, tmp_path)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("meterbill_usage_events_ingested_total", ())] == 7
    assert samples[("meterbill_stripe_requests_total",
                    (("operation", "GET /v1/subscriptions"), ("outcome", "ok")))] == 2
    assert samples[("meterbill_job_seconds_count", (("job", "usage-sync"),))] == 2
    assert samples[("meterbill_job_seconds_sum", (("job", "usage-sync"),))] == 4.0
