"""Prometheus metrics (prometheus-client): the families, the recorder services call through
`ports.metrics`, the Stripe HTTP client that times every call, and the scrape.

With several server processes, set PROMETHEUS_MULTIPROC_DIR to an empty directory shared by
them (before they start): each process writes its counters there and `/metrics` sums them
(prometheus-client's multiprocess mode). Gauges of state (inbox backlog, tenants by access,
open drifts, sync lag) are read from the database when scraped (`StateCollector`), so every
process answers the same.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import stripe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SYNC = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)

# name: (kind, help, labels). Every family meterbill exports from its processes.
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "webhook_events_received": ("counter", "Stripe webhook deliveries answered, by event "
                                "type and outcome (stored, duplicate, rejected, unavailable)",
                                ("type", "outcome")),
    "webhook_ack_seconds": ("histogram", "Time from a delivery's arrival to its answer", ()),
    "webhook_events_handled": ("counter", "Inbox rows processed, by event type and outcome "
                               "(handled, ignored, failed, dead, ...)", ("type", "outcome")),
    "stripe_requests": ("counter", "Stripe API calls, by operation and outcome (ok, "
                        "rate_limited, client_error, server_error, network_error)",
                        ("operation", "outcome")),
    "stripe_request_seconds": ("histogram", "Stripe API call latency", ("operation",)),
    "usage_events_ingested": ("counter", "Usage events accepted into the store", ()),
    "usage_events_rejected": ("counter", "Usage events refused at ingestion", ()),
    "usage_quantity_reported": ("counter", "Quantity sent to Stripe's meters", ()),
    "payments": ("counter", "Invoice payment outcomes seen, by outcome and attempt",
                 ("outcome", "attempt")),
    "dunning_transitions": ("counter", "Dunning state changes", ("from_state", "to_state")),
    "drifts_found": ("counter", "Drifts found by reconciliation, by kind", ("kind",)),
    "job_runs": ("counter", "Periodic job runs, by job and outcome", ("job", "outcome")),
    "job_seconds": ("histogram", "Duration of a job run (usage-sync: the sync's duration)",
                    ("job",)),
}


def _make(name: str, kind: str, help_text: str, labels: tuple[str, ...],
          registry: CollectorRegistry) -> Any:
    full = f"meterbill_{name}"
    if kind == "counter":
        return Counter(full, help_text, labels, registry=registry)
    buckets = _SYNC if name == "job_seconds" else _LATENCY
    return Histogram(full, help_text, labels, buckets=buckets, registry=registry)


class PrometheusMetrics:
    """The recorder behind `ports.metrics`: one prometheus-client object per family."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.families = {name: _make(name, kind, text, labels, registry)
                         for name, (kind, text, labels) in FAMILIES.items()}

    def count(self, name: str, amount: float = 1.0, **labels: str) -> None:
        family = self.families[name]
        (family.labels(**labels) if labels else family).inc(amount)

    def observe(self, name: str, value: float, **labels: str) -> None:
        family = self.families[name]
        (family.labels(**labels) if labels else family).observe(value)


_ID = re.compile(r"/(?:[a-z]{2,6}_[A-Za-z0-9]{6,}|[0-9]+)(?=/|$)")


def operation(method: str, url: str) -> str:
    """`GET /v1/subscriptions/{id}`: the path without object ids or the query."""
    path = url.split("://", 1)[-1]
    path = path[path.find("/"):] if "/" in path else "/"
    return f"{method.upper()} {_ID.sub('/{id}', path.split('?', 1)[0])}"


def _outcome(status: int) -> str:
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    return "client_error" if status >= 400 else "ok"


class MeteredHTTPClient(stripe.HTTPClient):
    """Stripe's HTTP client with each call counted and timed (every retry is a call)."""

    name = "metered"

    def __init__(self, inner: stripe.HTTPClient) -> None:
        super().__init__()
        self.inner = inner
        from ..ports.metrics import metrics

        self.metrics = metrics

    def request(self, method: str, url: str, headers: Mapping[str, str] | None,
                post_data: Any = None, **options: Any) -> Any:
        return self._timed(method, url, lambda: self.inner.request(
            method, url, headers, post_data, **options))

    def request_stream(self, method: str, url: str, headers: Mapping[str, str] | None,
                       post_data: Any = None, **options: Any) -> Any:
        return self._timed(method, url, lambda: self.inner.request_stream(
            method, url, headers, post_data, **options))

    def _timed(self, method: str, url: str, call: Callable[[], Any]) -> Any:
        op, started = operation(method, url), time.perf_counter()
        try:
            answer = call()
        except Exception:
            self.metrics.count("stripe_requests", operation=op, outcome="network_error")
            raise
        finally:
            self.metrics.observe("stripe_request_seconds", time.perf_counter() - started,
                                 operation=op)
        self.metrics.count("stripe_requests", operation=op, outcome=_outcome(int(answer[1])))
        return answer

    def close(self) -> None:
        self.inner.close()  # type: ignore[no-untyped-call]


class StateCollector:
    """Gauges read from the database at scrape time: `read()` returns
    {name: (help, {label value tuple: value}, label names)}."""

    def __init__(self, read: Callable[[], Mapping[str, tuple[str, Mapping[tuple[str, ...],
                                                                          float],
                                                            tuple[str, ...]]]]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        for name, (help_text, values, labels) in self.read().items():
            family = GaugeMetricFamily(f"meterbill_{name}", help_text, labels=list(labels))
            for key, value in values.items():
                family.add_metric(list(key), value)
            yield family


# This process's families (written to PROMETHEUS_MULTIPROC_DIR too in multiprocess mode).
PROCESS = CollectorRegistry(auto_describe=True)
_installed: PrometheusMetrics | None = None


def process_metrics() -> PrometheusMetrics:
    """The process's one recorder (prometheus-client's families are per process)."""
    global _installed
    if _installed is None:
        _installed = PrometheusMetrics(PROCESS)
    return _installed


class _Process:
    def collect(self) -> Iterable[Metric]:
        return PROCESS.collect()


def scrape(state: StateCollector | None) -> tuple[bytes, str]:
    """The exposition text: the families of this process (of every process, in multiprocess
    mode) and the state gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Process())
    if state is not None:
        registry.register(state)
    return generate_latest(registry), CONTENT_TYPE_LATEST
