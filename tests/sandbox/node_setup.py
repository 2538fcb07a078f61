"""stripe-node for the tests: `npm ci` into `node/` (pinned by its package-lock.json) when its
node_modules is missing. Without node or npm the caller skips, saying so; in CI (where
`.ci/run` sets METERBILL_TEST_REQUIRE_NODE) it fails instead."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"


def install_stripe_node() -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        reason = ("node and npm are needed for stripe-node "
                  f"(node: {node or 'absent'}, npm: {npm or 'absent'})")
        if os.environ.get("METERBILL_TEST_REQUIRE_NODE"):  # CI: the scenario must run
            pytest.fail(reason)
        pytest.skip(reason)
    if not (NODE_DIR / "node_modules" / "stripe" / "package.json").is_file():
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
