"""An `http_client` for stripe-python that answers from a Sandbox in the same process.

`StripeClient(key, http_client=SandboxHTTPClient(sandbox))` needs no socket; requests still go
through stripe-python's full encoding, retry and error-mapping path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import stripe

if TYPE_CHECKING:
    from .engine import Sandbox


class _Headers(Mapping[str, str]):
    """Case-insensitive headers, as stripe-python expects of an HTTP library."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._items = {k.lower(): (k, v) for k, v in headers.items()}

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items


class SandboxHTTPClient(stripe.HTTPClient):
    name = "stripe_sandbox"

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__()
        self.sandbox = sandbox

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: Any = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        response = self.sandbox.handle(method, url, dict(headers or {}), post_data)
        if response.status == 0:  # an injected dropped connection
            raise stripe.APIConnectionError(
                "Connection aborted (sandbox fault injection).", should_retry=True
            )
        return response.body.decode(), response.status, _Headers(response.headers)

    def request_stream(self, method: str, url: str, headers: Any, post_data: Any = None,
                       *, _usage: Any = None) -> tuple[Any, int, Mapping[str, str]]:
        import io

        body, status, headers_out = self.request(method, url, headers, post_data)
        return io.BytesIO(body.encode()), status, headers_out

    def close(self) -> None:
        pass
