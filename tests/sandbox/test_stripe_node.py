"""The billing scenario through stripe-node 23 (`node/scenario.js`), Stripe's official Node
client, against the sandbox on a port; its answers and events are checked against Stripe's SDK
types as the Python scenarios' are.

`npm ci` installs the pinned package (`node/package-lock.json`) into `node/node_modules` when
it is missing; the test skips, saying so, only when node or npm is not on the machine (and
fails then in CI, where `.ci/run` sets METERBILL_TEST_REQUIRE_NODE).
"""

from __future__ import annotations

import subprocess

from stripe_sandbox import Sandbox, SandboxConfig
from stripe_sandbox.server import SandboxServer

from .node_setup import NODE_DIR, install_stripe_node
from .sdk_schema.recorder import SchemaRecorder


def test_the_billing_scenario_through_stripe_node() -> None:
    install_stripe_node()
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
