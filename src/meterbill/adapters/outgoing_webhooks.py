"""Signed JSON posts to a URL of the SaaS (the `tenant.access_changed` events).

Signed as Stripe signs its webhooks (`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`), so
the receiving side can verify with stripe-python's `WebhookSignature.verify_header` or a few
lines of its own. Any answer but 2xx, or no answer, is a `DeliveryError`: the outbox retries.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from ..ports.notify import DeliveryError

SIGNATURE_HEADER = "Meterbill-Signature"


def signature_header(body: str, secret: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


class SignedWebhook:
    def __init__(self, url: str, secret: str, *, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.transport = transport
        self.clock = clock

    def post(self, body: str) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "meterbill",
                   SIGNATURE_HEADER: signature_header(body, self.secret, int(self.clock()))}
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                response = client.post(self.url, content=body.encode(), headers=headers)
        except httpx.HTTPError as error:
            # The URL may hold a token: name the host only.
            raise DeliveryError(f"access webhook ({urlsplit(self.url).hostname}) unreachable: "
                                f"{type(error).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"access webhook answered {response.status_code}: "
                                f"{response.text[:200]}")
