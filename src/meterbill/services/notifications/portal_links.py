"""Billing-portal links that stay valid inside an email.

A Stripe portal session lives minutes, an email for weeks. So an email carries our link,
`{PUBLIC_BASE_URL}/billing/portal/{tenant_id}?expires=<unix>&sig=<hmac>`, signed with
LINK_SIGNING_SECRET; opening it checks the signature and the expiry, then makes a portal
session for the tenant's Stripe customer and redirects to it.

The signature covers the tenant and the expiry, so a link cannot be moved to another tenant or
prolonged. Anyone holding an unexpired link can open that tenant's portal, which is what an
emailed "update your card" link means (Stripe's own emailed links work the same way).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import timedelta
from urllib.parse import quote, urlencode

from ...adapters.db.repositories import TenantRepository
from ...adapters.db.session import Database
from ...domain.clock import Clock, utcnow
from ...domain.errors import NotFound
from ...ports.stripe import PortalPort
from ..errors import LinkRefused

log = logging.getLogger("meterbill.notifications")


def derive_secret(secret: str, purpose: str = "portal-links") -> bytes:
    """A key for one purpose from a longer-lived secret (the API token, or
    LINK_SIGNING_SECRET), so a leaked link key never is the API token itself."""
    return hmac.new(secret.encode(), f"meterbill:{purpose}".encode(), hashlib.sha256).digest()


class PortalLinks:
    def __init__(self, key: bytes, base_url: str, ttl: timedelta, *,
                 clock: Clock = utcnow, ephemeral: bool = False) -> None:
        if len(key) < 16:
            raise ValueError("the link signing key must be at least 16 bytes")
        self.key = key
        self.base_url = base_url.rstrip("/")
        self.ttl = ttl
        self.clock = clock
        # A key of this process only (no secret configured): say so when a link is made.
        self.ephemeral = ephemeral

    def signature(self, tenant_id: str, expires: int, page: str = "portal") -> str:
        # The page is signed too: a link to one page never opens the other.
        digest = hmac.new(self.key, f"{page}:{tenant_id}:{expires}".encode(),
                          hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def url_for(self, tenant_id: str, page: str = "portal", *,
                expires: int | None = None) -> str:
        """A link to the tenant's billing portal (or, `page="billing"`, its billing page at
        `/billing/{tenant_id}`), valid for `ttl` from now or until `expires`."""
        if self.ephemeral:
            self.ephemeral = False
            log.warning("neither LINK_SIGNING_SECRET nor METERBILL_API_TOKEN is set: billing "
                        "links in emails are signed with a key of this process only and stop "
                        "working when it ends")
        if expires is None:
            expires = int((self.clock() + self.ttl).timestamp())
        query = urlencode({"expires": expires,
                           "sig": self.signature(tenant_id, expires, page)})
        path = "/billing/portal/" if page == "portal" else "/billing/"
        return f"{self.base_url}{path}{quote(tenant_id, safe='')}?{query}"

    def check(self, tenant_id: str, expires: str | int | None, sig: str | None,
              page: str = "portal") -> None:
        """Raise `LinkRefused` unless the link was signed by us for this tenant and is live."""
        try:
            expiry = int(str(expires))
        except ValueError:
            raise LinkRefused("This billing link is incomplete. Use the whole link from the "
                              "email, or ask for a new one.") from None
        expected = self.signature(tenant_id, expiry, page)
        # Constant-time: the time taken must not reveal how much of a forged signature matched.
        if not sig or not hmac.compare_digest(expected.encode(), sig.encode()):
            raise LinkRefused("This billing link is not valid (it was changed or cut short). "
                              "Use the whole link from the email, or ask for a new one.")
        if self.clock().timestamp() > expiry:
            raise LinkRefused("This billing link has expired. Use the link in a newer email, "
                              "or ask us for a new one.", code="link_expired")


class PortalService:
    """Opens the billing portal for a signed link."""

    def __init__(self, db: Database, links: PortalLinks, portal: PortalPort, *,
                 return_url: str | None) -> None:
        self.db = db
        self.links = links
        self.portal = portal
        self.return_url = return_url

    def open(self, tenant_id: str, expires: str | int | None, sig: str | None) -> str:
        """The URL of a fresh portal session; `LinkRefused` or `NotFound` otherwise."""
        self.links.check(tenant_id, expires, sig)
        with self.db.session() as session:
            tenant = TenantRepository(session).get(tenant_id)
            customer_id = tenant.stripe_customer_id if tenant is not None else None
        if not customer_id:
            raise NotFound("This billing account no longer exists. Contact us if you think "
                           "that is a mistake.", code="unknown_tenant")
        # One session per link per minute: a double click reuses it; a later click makes a
        # new one, since sessions expire.
        minute = int(self.links.clock().timestamp()) // 60
        return self.portal.create_session(
            customer_id, return_url=self.return_url,
            idempotency_key=f"portal:{tenant_id}:{expires}:{minute}")
