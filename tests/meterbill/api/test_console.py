"""The admin console over TestClient: login, sessions, CSRF, the rate limit, and each page."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meterbill.bootstrap import Container
from meterbill.domain.passwords import hash_password, password_matches
from meterbill.entrypoints.api.console.auth import (
    LOGIN_FAILURES,
    SESSION_COOKIE,
    parse_admin_users,
)

from ..conftest import API_TOKEN

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def login(api: TestClient, secret: str = API_TOKEN, user: str = "") -> Any:
    form = api.get("/admin/login")
    assert form.status_code == 200
    token = CSRF.search(form.text)
    assert token is not None
    return api.post("/admin/login", data={"user": user, "secret": secret,
                                          "csrf_token": token.group(1), "next": "/admin"},
                    follow_redirects=False)


def page_csrf(api: TestClient, path: str) -> str:
    found = CSRF.search(api.get(path).text)
    assert found is not None, f"{path} has no CSRF token"
    return found.group(1)


def test_pages_need_a_login(api: TestClient) -> None:
    for path in ("/admin", "/admin/tenants", "/admin/webhooks", "/admin/operations",
                 "/admin/notifications"):
        answer = api.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/admin/login?next=/admin")
    # The bearer token opens the API, not the console: the console has its own login.
    answer = api.get("/admin", headers={"Authorization": f"Bearer {API_TOKEN}"},
                     follow_redirects=False)
    assert answer.status_code == 303


def test_login_with_the_token_sets_a_strict_httponly_cookie(api: TestClient) -> None:
    answer = login(api)
    assert answer.status_code == 303 and answer.headers["location"] == "/admin"
    cookie = next(c for c in answer.headers.get_list("set-cookie")
                  if c.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # development: plain http on localhost
    overview = api.get("/admin")
    assert overview.status_code == 200
    assert "Sandbox mode" in overview.text and "MRR" in overview.text
    assert "default-src 'self'" in overview.headers["content-security-policy"]


def test_secure_cookie_outside_development(settings: Any, sandbox: Any) -> None:
    from meterbill.entrypoints.api import create_app

    from ..conftest import make_container, make_settings

    production = make_settings(settings.database_url, environment="production")
    container = make_container(production, sandbox)
    try:
        with TestClient(create_app(container), base_url="https://testserver") as api:
            answer = login(api)
            cookie = next(c for c in answer.headers.get_list("set-cookie")
                          if c.startswith(SESSION_COOKIE + "="))
            assert "Secure" in cookie
    finally:
        container.close()


def test_a_wrong_secret_is_refused_and_limited(api: TestClient) -> None:
    for _ in range(LOGIN_FAILURES):
        answer = login(api, secret="wrong")
        assert answer.status_code == 401
        assert SESSION_COOKIE not in answer.cookies
    limited = login(api)  # even the right token waits once the limit is reached
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert "Too many failed logins" in limited.text


def test_login_without_its_form_token_is_refused(api: TestClient) -> None:
    answer = api.post("/admin/login", data={"user": "", "secret": API_TOKEN,
                                            "csrf_token": "forged"}, follow_redirects=False)
    assert answer.status_code == 403
    assert api.get("/admin", follow_redirects=False).status_code == 303


def test_configured_admin_users(settings: Any, sandbox: Any) -> None:
    from meterbill.entrypoints.api import create_app

    from ..conftest import make_container, make_settings

    users = f"alice:{hash_password('correct horse', iterations=1000)}"
    container = make_container(make_settings(settings.database_url,
                                             console_admin_users=users), sandbox)
    try:
        with TestClient(create_app(container)) as api:
            assert login(api, "wrong", user="alice").status_code == 401
            assert login(api, "correct horse", user="alice").status_code == 303
            assert ">alice<" in api.get("/admin").text
    finally:
        container.close()


def test_password_hashes() -> None:
    stored = hash_password("s3cret", iterations=1000)
    assert password_matches("s3cret", stored) and not password_matches("other", stored)
    with pytest.raises(ValueError, match="bob"):
        parse_admin_users("bob:plaintext")


def test_an_action_without_the_csrf_token_is_refused(
        api: TestClient, subscribed: dict[str, Any], container: Container) -> None:
    login(api)
    tenant = subscribed["tenant_id"]
    for data in ({}, {"csrf_token": "not-the-session-token"}):
        answer = api.post(f"/admin/tenants/{tenant}/cancel", data={**data, "when": "now"},
                          follow_redirects=False)
        assert answer.status_code == 403
    assert container.tenants.get(tenant).status == "trialing"  # nothing happened
    token = page_csrf(api, f"/admin/tenants/{tenant}")
    answer = api.post(f"/admin/tenants/{tenant}/cancel", data={"csrf_token": token,
                                                               "when": "now"})
    assert answer.status_code == 200
    assert "Canceled now" in answer.text
    assert container.tenants.get(tenant).status == "canceled"


def test_logout_ends_the_session(api: TestClient) -> None:
    login(api)
    session = api.cookies.get(SESSION_COOKIE)
    token = page_csrf(api, "/admin")
    assert api.post("/admin/logout", data={"csrf_token": token},
                    follow_redirects=False).status_code == 303
    api.cookies.set(SESSION_COOKIE, session or "")  # the old cookie, replayed
    assert api.get("/admin", follow_redirects=False).status_code == 303


def test_every_page_renders(api: TestClient, subscribed: dict[str, Any],
                            new_customer: Callable[..., dict[str, Any]]) -> None:
    new_customer("lonely_tenant", "lonely@acme.test", "Lonely")
    login(api)
    tenant = subscribed["tenant_id"]
    for path, expect in (("/admin", "Tenants by state"),
                         ("/admin/tenants", tenant),
                         ("/admin/tenants?state=trialing", tenant),
                         ("/admin/tenants?q=lonely", "lonely_tenant"),
                         (f"/admin/tenants/{tenant}", "Usage this period"),
                         ("/admin/webhooks", "Webhook inbox"),
                         ("/admin/operations", "Periodic jobs"),
                         ("/admin/notifications", "Notifications")):
        answer = api.get(path)
        assert answer.status_code == 200, path
        assert expect in answer.text, path
    assert "lonely_tenant" not in api.get("/admin/tenants?state=trialing").text
    assert "lonely_tenant" in api.get("/admin/tenants?state=other").text
    assert api.get("/admin/tenants?state=bogus").status_code == 200  # says what to choose
    assert "Choose one of" in api.get("/admin/tenants?state=bogus").text
    assert api.get("/admin/tenants/nobody").status_code == 404
    invoices = api.get(f"/admin/tenants/{tenant}").text
    assert "/pdf" in invoices  # the first invoice, with its PDF link
    assert api.get("/static/console.css").status_code == 200


def test_hash_password_command_makes_an_entry_that_logs_in(settings: Any,
                                                           sandbox: Any) -> None:
    from typer.testing import CliRunner

    from meterbill.entrypoints.api import create_app
    from meterbill.entrypoints.cli import app

    from ..conftest import make_container, make_settings

    runner = CliRunner()
    short = runner.invoke(app, ["console", "hash-password", "carol", "--stdin"], input="short\n")
    assert short.exit_code == 2 and "at least 12" in short.output
    made = runner.invoke(app, ["console", "hash-password", "carol", "--stdin"],
                         input="a long passphrase\n")
    assert made.exit_code == 0, made.output
    entry = made.output.strip()
    assert entry.startswith("carol:pbkdf2_sha256$")
    container = make_container(make_settings(settings.database_url,
                                             console_admin_users=entry), sandbox)
    try:
        with TestClient(create_app(container)) as api:
            assert login(api, "a long passphrase", user="carol").status_code == 303
    finally:
        container.close()


def test_notification_preview_is_the_rendered_email_in_a_sandbox(
        api: TestClient, auth: dict[str, str], subscribed: dict[str, Any],
        container: Container) -> None:
    tenant = subscribed["tenant_id"]
    step = api.post("/dunning/process", headers=auth, json={
        "tenant_id": tenant, "failure_count": 1, "invoice_amount": 99.00})
    assert step.status_code == 200, step.text
    reminder = next(n for n in container.notifications.list(tenant_id=tenant)
                    if n.kind == "dunning_reminder")
    login(api)
    listed = api.get(f"/admin/notifications?tenant={tenant}")
    assert f"/admin/notifications/{reminder.id}" in listed.text
    shown = api.get(f"/admin/notifications/{reminder.id}")
    assert shown.status_code == 200
    assert f'src="/admin/notifications/{reminder.id}/preview"' in shown.text
    preview = api.get(f"/admin/notifications/{reminder.id}/preview")
    assert preview.status_code == 200
    assert preview.headers["content-security-policy"].startswith("sandbox;")
    assert "$99.00" in preview.text  # the email as rendered for the customer
    # The email carries the signed link to the customer's billing page, and it opens.
    link = re.search(r'href="http://[^/"]+(/billing/' + tenant + r'\?[^"]+)"', preview.text)
    assert link is not None
    assert api.get(link.group(1).replace("&amp;", "&")).status_code == 200
    timeline = api.get(f"/admin/tenants/{tenant}").text
    assert "reminder" in timeline  # the access timeline lists the step


def test_tenant_list_pages(api: TestClient,
                           new_customer: Callable[..., dict[str, Any]]) -> None:
    for n in range(27):
        new_customer(f"page_{n:02d}", f"p{n}@acme.test", f"Page {n}")
    login(api)
    first = api.get("/admin/tenants")
    assert "27 tenants, page 1 of 2" in first.text
    assert "page_24" in first.text and "page_25" not in first.text
    second = api.get("/admin/tenants?page=2")
    assert "page_25" in second.text and "page_26" in second.text
    assert "page_00" not in second.text


def test_run_a_job_and_see_usage_drifts(api: TestClient, container: Container) -> None:
    from meterbill.adapters.db.usage_ledger import UsageDrift, UsageDriftRepository

    now = datetime.now(UTC)
    with container.db.session() as session:  # what `usage reconcile` records on a drift
        UsageDriftRepository(session).add(UsageDrift(
            tenant_id="drifty", metric="queries", customer_id="cus_x", period_label="current",
            period_start=now - timedelta(days=3), period_end=now, ours=1200, stripe=1000,
            ledger=1200, diff=200))
    login(api)
    page = api.get("/admin/operations")
    assert "drifty" in page.text and "1,200" in page.text
    assert "lost on the way to Stripe" in page.text
    token = page_csrf(api, "/admin/operations")
    ran = api.post("/admin/operations/jobs/notifications/run", data={"csrf_token": token})
    assert ran.status_code == 200 and "notifications: ok" in ran.text
    assert api.post("/admin/operations/jobs/notifications/run",
                    follow_redirects=False).status_code == 403  # no token, no run


def test_a_tenant_page_while_stripe_is_down_says_so(
        stripe_down: tuple[Container, Any], subscribed: dict[str, Any]) -> None:
    from meterbill.entrypoints.api import create_app

    broken, _ = stripe_down
    with TestClient(create_app(broken)) as api:
        login(api)
        answer = api.get(f"/admin/tenants/{subscribed['tenant_id']}")
        assert answer.status_code in (502, 503)
        assert "not available just now" in answer.text
        assert answer.headers["content-type"].startswith("text/html")
        assert api.get("/admin").status_code == 200  # the overview needs no Stripe call


def test_email_the_billing_link_over_smtp(settings: Any, sandbox: Any,
                                          smtp_server: Any) -> None:
    from meterbill.entrypoints.api import create_app

    from ..conftest import make_container, make_settings

    container = make_container(make_settings(settings.database_url,
                                             smtp_url=smtp_server.url), sandbox)
    try:
        with TestClient(create_app(container)) as api:
            customer = api.post("/customers", headers={"Authorization": f"Bearer {API_TOKEN}"},
                                json={"tenant_id": "mailme", "email": "ap@mailme.test",
                                      "name": "Mail Me"})
            assert customer.status_code == 200, customer.text
            login(api)
            token = page_csrf(api, "/admin/tenants/mailme")
            sent = api.post("/admin/tenants/mailme/send-billing-link",
                            data={"csrf_token": token})
            assert "in the outbox for ap@mailme.test" in sent.text
            [message] = smtp_server.wait_for(1)
            assert message.rcpt_tos == ["ap@mailme.test"]
            link = re.search(r"http://\S+(/billing/mailme\?\S+)", message.text)
            assert link is not None, message.text
            assert "Billing for Mail Me" in api.get(link.group(1)).text
            # A double click within the minute is one email.
            api.post("/admin/tenants/mailme/send-billing-link", data={"csrf_token": token})
            assert [n.kind for n in container.notifications.list(tenant_id="mailme")
                    ].count("billing_link") == 1
    finally:
        container.close()


def test_failed_logins_are_remembered_for_a_bounded_number_of_addresses() -> None:
    from meterbill.entrypoints.api.console import auth as console_auth

    limiter = console_auth.ConsoleAuth(token="t" * 20, users={}, secure_cookies=False)
    for n in range(console_auth.MAX_TRACKED_CLIENTS + 50):
        assert limiter.authenticate(f"10.0.{n // 256}.{n % 256}", "", "wrong") is None
    assert len(limiter.failures) <= console_auth.MAX_TRACKED_CLIENTS
    for _ in range(LOGIN_FAILURES):
        limiter.authenticate("192.0.2.1", "", "wrong")
    assert limiter.retry_after("192.0.2.1") is not None  # the newest are still counted


def test_the_sandbox_clock_form_says_what_to_fix(api: TestClient,
                                                 subscribed: dict[str, Any]) -> None:
    login(api)
    token = page_csrf(api, "/admin")
    refused = api.post("/admin/clock/advance", data={"step": "day"}, follow_redirects=False)
    assert refused.status_code == 403  # no CSRF token: nothing moves
    unknown = api.post("/admin/clock/advance", data={"csrf_token": token, "step": "year",
                                                       "back": "https://elsewhere.test/"})
    assert unknown.url.path == "/admin"  # never sent back outside the console
    assert "Choose how far to move the clock" in unknown.text
    # These tests' customers sit on no test clock (SANDBOX_TEST_CLOCKS=false): the service's
    # refusal is shown on the page the form came from.
    none = api.post("/admin/clock/advance", data={
        "csrf_token": token, "step": "day", "back": f"/admin/tenants/{subscribed['tenant_id']}"})
    assert none.url.path == f"/admin/tenants/{subscribed['tenant_id']}"
    assert "No customer of meterbill sits on a sandbox test clock yet" in none.text


def test_an_advance_is_told_in_one_sentence() -> None:
    from meterbill.entrypoints.api.console.sandbox import summary

    told = summary({"reached": "2027-01-06T12:00:00+00:00",
                    "invoices": {"created": 2, "paid": 1, "payment_failed": 1,
                                 "paid_cents": 9900, "failed_cents": 2900},
                    "dunning": [{"step": "reminder"}], "emails": [{}, {}], "unhandled": 0})
    assert told == ("Sandbox clock moved to 2027-01-06 12:00 UTC; invoices: 2 created, 1 paid, "
                    "1 payment_failed; 1 dunning step(s); 2 email(s).")


def test_the_browsers_icon_request_is_answered_without_content(api: TestClient) -> None:
    answer = api.get("/favicon.ico")
    assert answer.status_code == 204 and answer.content == b""
