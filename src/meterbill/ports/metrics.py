"""Telemetry: what services count and time, behind one small interface.

A service records with one call (`metrics.count("usage_events_ingested", 12)`); the name
must be one of `adapters.metrics.FAMILIES`, where each is declared once with its help and
labels. Until `install` is called (bootstrap does, once per process) every call is a no-op,
so services and tests without a server pay nothing.
"""

from __future__ import annotations

from typing import Protocol


class MetricsPort(Protocol):
    def count(self, name: str, amount: float = 1.0, **labels: str) -> None: ...
    def observe(self, name: str, value: float, **labels: str) -> None: ...


class _Nothing:
    def count(self, name: str, amount: float = 1.0, **labels: str) -> None:
        pass

    def observe(self, name: str, value: float, **labels: str) -> None:
        pass


class _Current:
    """Forwards to the installed recorder (a module attribute would be bound at import)."""

    target: MetricsPort = _Nothing()

    def count(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self.target.count(name, amount, **labels)

    def observe(self, name: str, value: float, **labels: str) -> None:
        self.target.observe(name, value, **labels)


metrics = _Current()


def install(recorder: MetricsPort) -> None:
    _Current.target = recorder
