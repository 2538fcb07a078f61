"""A Stripe sandbox served over HTTP from a child process, so that what a benchmark measures
(meterbill's client side) and the sandbox answering it do not share one interpreter.

`SandboxChild(prepare, size)` spawns the child, which builds a sandbox, runs
`prepare(client, size)` on it (a module-level function: the child is spawned, not forked) and
serves it; the parent gets the URL and whatever `prepare` returned (`.data`)."""

from __future__ import annotations

import json
import multiprocessing
import urllib.request
from collections.abc import Callable
from typing import Any


def _serve(prepare: Callable[[Any, int], Any], size: int, conn: Any) -> None:
    import stripe

    from stripe_sandbox import Sandbox, SandboxConfig, SandboxHTTPClient
    from stripe_sandbox.server import SandboxServer

    sandbox = Sandbox(SandboxConfig())
    client = stripe.StripeClient("sk_test_bench", http_client=SandboxHTTPClient(sandbox),
                                 max_network_retries=0)
    data = prepare(client, size)
    server = SandboxServer(sandbox).start()
    conn.send((server.url, data))
    conn.recv()  # until the parent is done
    server.stop()


class SandboxChild:
    def __init__(self, prepare: Callable[[Any, int], Any], size: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(prepare, size, child), daemon=True)
        self.process.start()
        self.url, self.data = self.conn.recv()

    def faults(self, **values: Any) -> dict[str, Any]:
        """Change the sandbox's faults (rate limit...), or read them and its stats."""
        request = urllib.request.Request(
            f"{self.url}/_sandbox/faults", data=json.dumps(values).encode(),
            headers={"Content-Type": "application/json"}, method="POST" if values else "GET")
        with urllib.request.urlopen(request) as answer:
            result: dict[str, Any] = json.load(answer)
            return result

    def close(self) -> None:
        self.conn.send("stop")
        self.process.join(timeout=10)
