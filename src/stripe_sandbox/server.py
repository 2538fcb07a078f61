"""The sandbox over HTTP: `python -m stripe_sandbox --port 12111` (port 0 picks a free one).

A threaded HTTP/1.1 server with keep-alive, so stripe-python's pooled connections are reused.
API paths (`/v1/...`, `/v2/...`) go to `Sandbox.handle`; other paths are pages the sandbox
serves itself (hosted invoices, PDFs, the billing portal, the control endpoint).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .engine import Response, Sandbox


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY each keep-alive request
    # waits ~40 ms on delayed ACKs.
    disable_nagle_algorithm = True
    server: SandboxServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet by default
        if self.server.verbose:
            super().log_message(format, *args)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        sandbox = self.server.sandbox
        path = self.path.split("?", 1)[0]
        if path.startswith(("/v1/", "/v2/")):
            response = sandbox.handle(self.command, self.path, dict(self.headers.items()), body)
        else:
            response = sandbox.page(self.command, self.path, dict(self.headers.items()), body)
        if response.status == 0:  # injected dropped connection: close without an answer
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self._write(response)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = _serve


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 resets connections when 20 clients connect at once.
    request_queue_size = 128

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0,
                 verbose: bool = False) -> None:
        super().__init__((host, port), _Handler)
        self.sandbox = sandbox
        self.verbose = verbose
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SandboxServer:
        """Serve on a background thread (tests and `meterbill serve` in sandbox mode)."""
        self.sandbox.set_public_url(self.url)
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05},
            name="stripe-sandbox", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
