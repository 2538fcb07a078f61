"""The billing-portal link of emails: signed, expiring, redirecting to a fresh Stripe session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import stripe
from fastapi.testclient import TestClient

from meterbill.bootstrap import Container
from meterbill.domain.clock import utcnow
from meterbill.entrypoints.api import create_app
from meterbill.services.errors import LinkRefused
from meterbill.services.notifications.portal_links import PortalLinks, derive_secret
from stripe_sandbox import Sandbox

from .conftest import add_tenant


@pytest.fixture
def web(mail_container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(mail_container), follow_redirects=False) as client:
        yield client


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_a_valid_link_redirects_to_a_portal_session(
        mail_container: Container, web: TestClient, stripe_client: stripe.StripeClient,
        sandbox: Sandbox) -> None:
    customer_id = add_tenant(mail_container, stripe_client)
    links, moment = mail_container.portal_links, utcnow()
    # A clock that stands still: both clicks below fall in the same minute.
    mail_container.portal_links = PortalLinks(links.key, links.base_url, links.ttl,
                                               clock=lambda: moment)
    link = mail_container.portal_links.url_for("acme")
    assert link.startswith("http://127.0.0.1:8000/billing/portal/acme?expires=")
    response = web.get(path_of(link))  # no API token: the signature is the authentication
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(sandbox.config.public_url.rstrip("/") + "/p/session/")
    [session] = [s for s in sandbox.store.all("billing_portal.session")
                 if s["url"] == location]
    assert session["customer"] == customer_id
    assert session["return_url"] == "http://127.0.0.1:8000/billing/portal/return"
    again = web.get(path_of(link))  # a double click within the minute: the same session
    assert again.status_code == 303 and again.headers["location"] == location
    assert web.get("/billing/portal/return").status_code == 200


def test_a_tampered_link_is_refused(mail_container: Container, web: TestClient,
                                    stripe_client: stripe.StripeClient,
                                    sandbox: Sandbox) -> None:
    add_tenant(mail_container, stripe_client)
    add_tenant(mail_container, stripe_client, "other", "other@acme.test")
    link = path_of(mail_container.portal_links.url_for("acme"))
    query = parse_qs(urlsplit(link).query)
    expires, sig = query["expires"][0], query["sig"][0]
    for bad in (f"/billing/portal/other?expires={expires}&sig={sig}",  # another tenant
                f"/billing/portal/acme?expires={int(expires) + 86400}&sig={sig}",  # prolonged
                f"/billing/portal/acme?expires={expires}&sig={sig[:-2]}xx",
                f"/billing/portal/acme?expires={expires}",
                f"/billing/portal/acme?expires=soon&sig={sig}"):
        response = web.get(bad)
        assert response.status_code == 403, bad
        assert "text/html" in response.headers["content-type"]
        assert "Link not valid" in response.text
    assert sandbox.store.all("billing_portal.session") == []


def test_an_expired_link_is_refused(mail_container: Container, web: TestClient,
                                    stripe_client: stripe.StripeClient) -> None:
    add_tenant(mail_container, stripe_client)
    links = mail_container.portal_links
    old = PortalLinks(links.key, links.base_url, timedelta(days=30),
                      clock=lambda: utcnow() - timedelta(days=31))
    response = web.get(path_of(old.url_for("acme")))
    assert response.status_code == 403
    assert "Link expired" in response.text and "newer email" in response.text


def test_an_unknown_tenant_gets_404(mail_container: Container, web: TestClient) -> None:
    response = web.get(path_of(mail_container.portal_links.url_for("gone")))
    assert response.status_code == 404 and "no longer exists" in response.text


def test_links_are_signed_per_secret() -> None:
    one = PortalLinks(derive_secret("secret-one"), "https://b.example", timedelta(days=1))
    two = PortalLinks(derive_secret("secret-two"), "https://b.example", timedelta(days=1))
    query = parse_qs(urlsplit(one.url_for("acme")).query)
    one.check("acme", query["expires"][0], query["sig"][0])
    with pytest.raises(LinkRefused):
        two.check("acme", query["expires"][0], query["sig"][0])
