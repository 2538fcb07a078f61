"""Fixtures of the invoice verification tests: a month on a test clock, and the CLI runner."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meterbill.bootstrap import Container
from stripe_sandbox import Sandbox
from tests.meterbill.cli.conftest import cli  # noqa: F401  (the fixture, for these tests too)

from .month import Month, make_month


@pytest.fixture
def month(container: Container, sandbox: Sandbox) -> Iterator[Month]:
    made = make_month(container, sandbox)
    try:
        yield made
    finally:
        made.close()
