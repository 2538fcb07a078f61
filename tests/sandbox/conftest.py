"""Every sandbox test's answers and events are checked against Stripe's SDK types as they run
(`sdk_schema/recorder.py`): a test whose sandbox sent a shape Stripe does not fails with the
violations listed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stripe_sandbox import Sandbox, SandboxConfig

from .sdk_schema.recorder import SchemaRecorder


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    sandbox = Sandbox(SandboxConfig())
    recorder = SchemaRecorder(sandbox)
    yield sandbox
    if recorder.problems:
        pytest.fail(f"{len(recorder.problems)} answers or events differ from Stripe's types:\n"
                    + "\n".join(dict.fromkeys(recorder.problems)), pytrace=False)
