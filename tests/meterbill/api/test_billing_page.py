"""The customer billing page: a signed, expiring link shows its own tenant only; a changed,
moved or expired link is refused with the same answer whether the tenant exists or not."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient

from meterbill.bootstrap import Container


def billing_link(api: TestClient, auth: dict[str, str], tenant_id: str) -> str:
    answer = api.post(f"/tenants/{tenant_id}/billing-link", headers=auth)
    assert answer.status_code == 200, answer.text
    url: str = answer.json()["url"]
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_the_link_needs_the_api_token(api: TestClient, subscribed: dict[str, Any]) -> None:
    assert api.post(f"/tenants/{subscribed['tenant_id']}/billing-link").status_code == 401


def test_an_unknown_tenant_gets_no_link(api: TestClient, auth: dict[str, str]) -> None:
    answer = api.post("/tenants/nobody/billing-link", headers=auth)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "unknown_tenant"


def test_the_page_shows_its_tenant(api: TestClient, auth: dict[str, str],
                                   subscribed: dict[str, Any]) -> None:
    tenant = subscribed["tenant_id"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sent = api.post("/usage/events", headers=auth, json={"events": [
        {"event_id": "page-1", "tenant_id": tenant, "quantity": 125_000, "timestamp": now}]})
    assert sent.status_code == 200, sent.text
    link = billing_link(api, auth, tenant)
    page = api.get(link)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "Billing for Acme" in page.text
    assert "125,000" in page.text and "100,000" in page.text  # used and included
    assert "$20.00" in page.text  # 25,000 over at $0.0008
    assert "/billing/portal/" in page.text  # the way to Stripe's portal
    csv = api.get(link.replace("?", "/statement.csv?", 1))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    rows = csv.text.strip().splitlines()
    assert rows[0] == "date,queries" and rows[-1] == "total,125000"
    pdf = api.get(link.replace("?", "/statement.pdf?", 1))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-1.4")
    assert pdf.content.rstrip().endswith(b"%%EOF") and b"125,000" in pdf.content


def test_a_link_opens_its_own_tenant_only(api: TestClient, auth: dict[str, str],
                                          subscribed: dict[str, Any],
                                          new_customer: Callable[..., dict[str, Any]]) -> None:
    new_customer("other_tenant", "other@acme.test", "Other")
    link = billing_link(api, auth, subscribed["tenant_id"])
    moved = link.replace(subscribed["tenant_id"], "other_tenant", 1)
    unknown = link.replace(subscribed["tenant_id"], "no_such_tenant", 1)
    answers = [api.get(moved), api.get(unknown)]
    assert [a.status_code for a in answers] == [403, 403]
    # The same words for a tenant that exists and one that does not: nothing to learn.
    assert answers[0].text == answers[1].text
    assert "Other" not in answers[0].text


def test_tampered_and_expired_links_are_refused(api: TestClient, auth: dict[str, str],
                                                subscribed: dict[str, Any],
                                                container: Container) -> None:
    tenant = subscribed["tenant_id"]
    link = billing_link(api, auth, tenant)
    query = parse_qs(urlsplit(link).query)
    sig, expires = query["sig"][0], query["expires"][0]
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    longer = str(int(expires) + 86400)
    for bad in (f"/billing/{tenant}?expires={expires}&sig={flipped}",
                f"/billing/{tenant}?expires={longer}&sig={sig}",
                f"/billing/{tenant}?expires={expires}",
                f"/billing/{tenant}",
                f"/billing/{tenant}/statement.csv?expires={expires}&sig={flipped}"):
        answer = api.get(bad)
        assert answer.status_code == 403, bad
        assert "Link not valid" in answer.text or "incomplete" in answer.text, bad
    # The portal link's signature does not open the page (the page is part of what is signed).
    portal = container.portal_links.url_for(tenant)
    portal_query = urlsplit(portal).query
    assert api.get(f"/billing/{tenant}?{portal_query}").status_code == 403
    past = int((datetime.now(UTC) - timedelta(minutes=1)).timestamp())
    expired = urlsplit(container.portal_links.url_for(tenant, "billing", expires=past))
    answer = api.get(f"{expired.path}?{expired.query}")
    assert answer.status_code == 403 and "Link expired" in answer.text


def test_the_page_while_stripe_is_down_asks_to_try_again(
        api: TestClient, auth: dict[str, str], subscribed: dict[str, Any],
        stripe_down: tuple[Container, Any]) -> None:
    from meterbill.entrypoints.api import create_app

    link = billing_link(api, auth, subscribed["tenant_id"])
    broken, _ = stripe_down
    with TestClient(create_app(broken)) as down:
        answer = down.get(link)
        assert answer.status_code in (502, 503)
        assert "Please try again" in answer.text
