"""Run `meterbill ...` in-process with Typer's CliRunner, on the test's container."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from meterbill.bootstrap import Container
from meterbill.entrypoints.cli import CliContext, app

Run = Callable[..., Result]


def run_cli(obj: CliContext, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), obj=obj)


@pytest.fixture
def cli(container: Container) -> Run:
    """`cli("tenants", "list", "--json")` on the test's container (which the test owns)."""

    def invoke(*args: str, obj: Any = None) -> Result:
        context = obj or CliContext(settings_factory=lambda: container.settings,
                                    container_factory=lambda _settings: container,
                                    close_container=False, lasting_sandbox=False)
        return run_cli(context, *args)

    return invoke
