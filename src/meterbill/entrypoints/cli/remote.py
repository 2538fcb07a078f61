"""Commands asking the running `meterbill serve` for what it holds, over its own API.

A DuckDB usage store admits one process. While `meterbill serve` runs it holds the file, so the
commands that read or write usage (`usage ingest|sync|reconcile`, `tenants usage|entitlement`,
and webhook replays that flush usage) send the work to the server through its authenticated
routes and print the answer exactly as they print their own results. The server is found
through `server_record`; the token is the one `auth.resolve_api_token` gives the server too.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

import httpx

from meterbill.domain.errors import MeterbillError
from meterbill.domain.usage import FieldError
from meterbill.services.usage.ingest import IngestResult

from .server_record import ServerRecord

# A server that has claimed its record may still be migrating before it listens.
CONNECT_WAIT_SECONDS = 30.0
# A sync over many tenants takes as long as Stripe's rate limits make it.
TIMEOUT = httpx.Timeout(10.0, read=3600.0)


class RemoteError(MeterbillError):
    """An error the server answered with: its status, code, message, field and details."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        details = {k: v for k, v in error.items() if k not in ("code", "message", "field")}
        super().__init__(str(error.get("message") or f"HTTP {status}"),
                         field=error.get("field"), code=str(error.get("code") or "error"),
                         details=details)
        self.status = status  # type: ignore[misc]  # per instance: the server's status


class ServerUnavailable(MeterbillError):
    status = 503
    default_code = "server_unavailable"
    retryable = True


class ServerClient:
    """The running server's API, as one command uses it."""

    def __init__(self, record: ServerRecord, url: str, token: str,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.record = record
        self.url = url
        self._http = httpx.Client(headers={"Authorization": f"Bearer {token}"},
                                  timeout=TIMEOUT, transport=transport)

    def close(self) -> None:
        self._http.close()

    # --- what the commands ask -------------------------------------------------------------

    def sync(self, *, day: date | None, since: date | None,
             tenants: list[str] | None) -> dict[str, Any]:
        body = {"date": day.isoformat() if day else None,
                "since": since.isoformat() if since else None, "tenants": tenants}
        return self._json("POST", "/admin/usage/sync", json=body)

    def reconcile(self, period: str | None, tenants: list[str] | None) -> dict[str, Any]:
        return self._json("POST", "/admin/usage/reconcile",
                          json={"period": period, "tenants": tenants})

    def tenant_usage(self, tenant_id: str, period: str, metric: str) -> dict[str, Any]:
        return self._json("GET", f"/tenants/{quote(tenant_id, safe='')}/usage",
                          params={"period": period, "metric": metric})

    def entitlement(self, tenant_id: str) -> dict[str, Any]:
        return self._json("GET", f"/tenants/{quote(tenant_id, safe='')}/entitlement")

    def flush(self, customer_id: str, period_end: datetime) -> None:
        """`UsageFlushPort`: the period-end flush of a webhook replayed by a command."""
        self._json("POST", "/admin/usage/flush",
                   json={"customer_id": customer_id, "period_end": period_end.isoformat()})

    def jobs(self) -> dict[str, Any]:
        return self._json("GET", "/admin/jobs")

    def run_job(self, name: str) -> dict[str, Any]:
        return self._json("POST", f"/admin/jobs/{quote(name, safe='')}/run")

    def advance_sandbox(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/admin/sandbox/advance", json=body)

    def demo(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/admin/sandbox/demo", json=body)

    def ingest_batch(self, events: list[object]) -> IngestResult:
        """`POST /usage/events` for one batch; errors by index in `events`, as locally.

        A batch over the server's body limit is sent in halves."""
        response = self._send("POST", "/usage/events", json={"events": events})
        if response.status_code == 413 and len(events) > 1:
            half = len(events) // 2
            first, second = self.ingest_batch(events[:half]), self.ingest_batch(events[half:])
            second.errors = [FieldError(e.index + half if e.index is not None else None,
                                        e.field, e.message) for e in second.errors]
            first._add(second)
            return first
        body = _body(response)
        if response.status_code == 422 and body.get("error", {}).get("code") == "invalid_events":
            body = body["error"]  # every event rejected: the counts are in the envelope
        elif response.status_code >= 400:
            raise _error(response.status_code, body)
        return IngestResult(
            accepted=int(body["accepted"]), duplicates=int(body["duplicates"]),
            rejected=int(body["rejected"]),
            errors=[FieldError(e.get("index"), e.get("field"), e["message"])
                    for e in body.get("errors", [])])

    # --- HTTP --------------------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        body = _body(response)
        if response.status_code >= 400:
            raise _error(response.status_code, body)
        return body

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + CONNECT_WAIT_SECONDS
        while True:
            try:
                response = self._http.request(method, self.url + path, **kwargs)
            except httpx.ConnectError:
                # Starting (not listening yet) while its record is held: wait for it.
                info = self.record.running(wait_seconds=0)
                if info is None or time.monotonic() >= deadline:
                    raise ServerUnavailable(
                        f"The meterbill server at {self.url} does not answer"
                        f"{'' if info else ' (it has stopped)'}. Fix: check `meterbill serve` "
                        "and run this command again.") from None
                self.url = str(info["api"])
                time.sleep(0.2)
                continue
            except httpx.HTTPError as error:
                raise ServerUnavailable(f"Asking the meterbill server at {self.url} failed: "
                                        f"{type(error).__name__}: {error}") from None
            if response.status_code == 401:
                raise RemoteError(401, {
                    "code": "api_token_refused",
                    "message": f"The meterbill server at {self.url} refused this command's "
                               "API token. Fix: give the command the server's token: set "
                               "METERBILL_API_TOKEN as the server has it (in development "
                               "`meterbill api-token` prints the kept one)."})
            return response


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RemoteError(response.status_code, {
            "code": "unexpected_answer",
            "message": f"The meterbill server answered {response.status_code} with something "
                       f"that is not a JSON object: {response.text[:200]!r}"})
    return body


def _error(status: int, body: dict[str, Any]) -> RemoteError:
    error = body.get("error")
    if not isinstance(error, dict):
        error = {"code": "http_error", "message": f"The meterbill server answered {status}."}
    return RemoteError(status, error)
