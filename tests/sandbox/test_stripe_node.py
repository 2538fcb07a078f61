"""The billing scenario through stripe-node 23 (`node/scenario.js`), Stripe's official Node
client, against the sandbox on a port; its answers and events are checked against Stripe's SDK
types as the Python scenarios' are.

`npm ci` installs the pinned package (`node/package-lock.json`) into `node/node_modules` when
it is missing; the test skips, saying so, only when node or npm is not on the machine (and
fails then in CI, where `.ci/run` sets METERBILL_TEST_REQUIRE_NODE).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from stripe_sandbox import Sandbox, SandboxConfig
from stripe_sandbox.server import SandboxServer

from .sdk_schema.recorder import SchemaRecorder

NODE_DIR = Path(__file__).resolve().parent / "node"


def _install() -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        reason = ("node and npm are needed for the stripe-node scenario "
                  f"(node: {node or 'absent'}, npm: {npm or 'absent'})")
        if os.environ.get("METERBILL_TEST_REQUIRE_NODE"):  # CI: the scenario must run
            pytest.fail(reason)
        pytest.skip(reason)
    if not (NODE_DIR / "node_modules" / "stripe" / "package.json").is_file():
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"


def test_the_billing_scenario_through_stripe_node() -> None:
    _install()
    sandbox = Sandbox(SandboxConfig())
    recorder = SchemaRecorder(sandbox)
    server = SandboxServer(sandbox, port=0).start()
    try:
        run = subprocess.run(["node", "scenario.js", server.url], cwd=NODE_DIR,
                             capture_output=True, text=True, timeout=120, check=False)
    finally:
        server.stop()
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"the stripe-node scenario failed:\n{output}"
    assert "steps passed" in run.stdout and "FAIL" not in run.stdout
    assert recorder.responses > 20 and recorder.events > 10
    assert recorder.problems == [], "\n".join(recorder.problems)
