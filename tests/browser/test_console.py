"""The admin console and the customer billing page in Chromium, against a real server."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from meterbill.services.notifications.portal_links import PortalLinks, derive_secret

from .conftest import LINK_SECRET, TOKEN, Server

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def shot(page: Any, name: str, tmp_path: Path) -> None:
    """A full-page screenshot: into docs/screenshots with UPDATE_SCREENSHOTS=1, else aside."""
    target = SHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"{name}.png"), full_page=True)


def log_in(page: Any, server: Server, path: str = "/admin") -> None:
    page.goto(server.url + path)
    assert "/admin/login" in page.url
    page.get_by_label("API token or password").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(re.escape(server.url + path) + r"$"))


def test_log_in_and_see_the_overview(page: Any, server: Server, tmp_path: Path) -> None:
    page.goto(server.url + "/admin/login")
    page.get_by_label("API token or password").fill("not the token")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text().startswith("That did not match")
    page.errors.clear()  # the 401 of the refused login is logged by Chromium, as it should be
    log_in(page, server)
    assert page.get_by_role("heading", name="Overview").is_visible()
    assert "Sandbox mode" in page.locator(".banner").inner_text()
    # pro $99 + three starters at $29 (one past due); the trial pays nothing yet
    assert page.locator("#mrr").inner_text() == "$186.00"
    # Paid this month: acme $99, globex $29 and wayne $29 (umbrella was declined).
    assert page.locator("#revenue").inner_text() == "$157.00"
    assert page.locator("[data-state=past_due]").inner_text() == "1"
    assert page.locator("svg.chart").count() == 3
    shot(page, "console-overview", tmp_path)


def test_find_the_past_due_tenant(page: Any, server: Server, tmp_path: Path) -> None:
    log_in(page, server)
    page.get_by_role("link", name="Tenants", exact=True).click()
    page.get_by_label("State").select_option("past_due")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#tenants tbody tr")
    assert rows.count() == 1
    rows.get_by_role("link", name="umbrella").click()
    assert page.locator("#tenant-state").inner_text() == "Past due"
    assert page.locator("#invoice-table tbody tr").filter(has_text="open").count() >= 1
    page.get_by_role("button", name="Retry the open invoice").click()
    assert "declined" in page.get_by_role("alert").inner_text().lower()


def test_a_tenant_page(page: Any, server: Server, tmp_path: Path) -> None:
    log_in(page, server, "/admin/tenants/acme")
    assert page.locator("#used").inner_text() == "125,000"
    assert "25,000" in page.locator("#usage").locator("..").inner_text()
    assert page.locator("#invoice-table").get_by_role("link", name="PDF").count() >= 1
    # Dates are shown in the viewer's locale (en-GB here: day/month/year).
    assert re.search(r"\d{2}/\d{2}/\d{4}", page.locator("time").first.inner_text())
    shot(page, "console-tenant", tmp_path)


def test_replay_a_dead_webhook(page: Any, server: Server) -> None:
    log_in(page, server, "/admin/webhooks")
    page.get_by_label("Status").select_option("dead")
    page.get_by_role("button", name="Filter").click()
    dead = page.locator("#inbox tbody tr")
    assert dead.count() >= 1
    dead.first.locator("a").click()
    assert page.locator("#event-status").inner_text() == "dead"
    assert page.locator("pre.error").inner_text()  # why it failed
    page.get_by_role("button", name="Replay").click()
    assert page.get_by_role("status").filter(has_text="Replayed").is_visible()
    # The worker handles it in the background: the page shows it done once it is.
    deadline = time.monotonic() + 30
    while page.locator("#event-status").inner_text() not in ("handled", "ignored"):
        assert time.monotonic() < deadline, page.locator("#event-status").inner_text()
        time.sleep(0.3)
        page.reload()


def test_cancel_a_subscription_and_see_its_state_change(page: Any, server: Server) -> None:
    log_in(page, server, "/admin/tenants/globex")
    assert page.locator("#tenant-state").inner_text() == "Active"
    page.get_by_label("Cancel", exact=True).select_option("now")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel subscription").click()
    assert "Canceled now" in page.get_by_role("status").last.inner_text()
    assert page.locator("#tenant-state").inner_text() == "Canceled"


def test_an_action_without_the_csrf_token_is_refused(page: Any, server: Server) -> None:
    log_in(page, server, "/admin/tenants/initech")
    form = page.locator("form[action$='/retry-invoice']")
    form.locator("input[name=csrf_token]").evaluate("input => input.remove()")
    with page.expect_response(re.compile(r"/retry-invoice$")) as answer:
        form.get_by_role("button").click()
    assert answer.value.status == 403
    assert "security token" in page.content()
    page.wait_for_load_state("networkidle")  # what the error page asks for comes in first
    page.errors.clear()  # Chromium logs the 403 it was answered


def test_the_customer_link(page: Any, server: Server, tmp_path: Path) -> None:
    log_in(page, server, "/admin/tenants/acme")
    page.get_by_role("button", name="Make a billing link").click()
    link = page.locator("#billing-link").get_attribute("href")
    assert link and "/billing/acme?" in link
    customer = page.context.browser.new_context(viewport={"width": 390, "height": 844},
                                                locale="en-US")
    phone = customer.new_page()
    errors: list[str] = []
    phone.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        phone.goto(link)
        assert phone.get_by_role("heading", level=1).inner_text() == "Billing for Acme Inc."
        explained = phone.locator("#explained").inner_text()
        assert "125,000" in explained and "$20.00" in explained
        assert phone.locator("#portal").get_attribute("href").startswith(
            server.url + "/billing/portal/acme?")
        # Phone width: nothing wider than the screen.
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        shot(phone, "customer-billing", tmp_path)
        assert not errors, errors
        parts = urlsplit(link)
        phone.goto(link.replace("/billing/acme?", "/billing/globex?"))
        assert phone.get_by_role("heading", level=1).inner_text() == "Link not valid"
        assert "Globex" not in phone.content()
        tampered = link[:-2] + ("AA" if not link.endswith("AA") else "BB")
        phone.goto(tampered)
        assert phone.get_by_role("heading", level=1).inner_text() == "Link not valid"
        links = PortalLinks(derive_secret(LINK_SECRET), server.url, _days(1))
        expired = links.url_for("acme", "billing", expires=int(time.time()) - 60)
        phone.goto(expired)
        assert phone.get_by_role("heading", level=1).inner_text() == "Link expired"
        assert parts.path == "/billing/acme"
    finally:
        customer.close()


def _days(n: int) -> Any:
    from datetime import timedelta

    return timedelta(days=n)


def test_keyboard_only(page: Any, server: Server) -> None:
    """Log in and reach a tenant with the keyboard alone."""
    page.goto(server.url + "/admin/tenants")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "user"
    page.keyboard.press("Tab")
    page.keyboard.type(TOKEN)
    page.keyboard.press("Enter")
    page.wait_for_url(server.url + "/admin/tenants")
    page.locator("#q").focus()
    page.keyboard.type("initech")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=initech"))
    link = page.locator("#tenants").get_by_role("link", name="initech")
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(server.url + "/admin/tenants/initech")
    assert page.locator("#tenant-state").inner_text() == "Trialing"


def test_operations_and_the_review_queue(page: Any, server: Server, tmp_path: Path) -> None:
    log_in(page, server, "/admin/operations")
    assert page.get_by_role("heading", name=re.compile("Service-level objectives")).is_visible()
    assert page.locator(".tile.slo").count() >= 1
    page.get_by_label(re.compile("dry run")).check()
    page.get_by_role("button", name="Reconcile now").click()
    assert "Nothing was changed or recorded" in page.locator("#dry-run").inner_text()
    page.get_by_role("button", name="Reconcile now").click()  # the real run, recorded
    assert page.get_by_role("status").filter(has_text="Reconciled").is_visible()
    assert page.locator("#job-runs").filter(has_text="subscription-reconcile").count() == 1
    shot(page, "console-operations", tmp_path)
    page.get_by_role("link", name="Invoices", exact=True).click()
    assert page.get_by_role("heading", name="Invoice review").is_visible()
    assert page.locator("#held-count").inner_text() == "0"


def test_move_the_sandbox_clock_to_the_next_renewal(page: Any, server: Server) -> None:
    """Last in this file: it moves the shared server's time on. The next renewal is the end of
    initech's 14-day trial: its first paid invoice appears."""
    log_in(page, server, "/admin/tenants/initech")
    assert page.locator("#tenant-state").inner_text() == "Trialing"
    invoices = page.locator("#invoice-table tbody tr")
    before = invoices.count()
    shown = page.locator("#clock-now").inner_text()
    page.get_by_role("button", name="To the next renewal").click()
    flash = page.get_by_role("status").filter(has_text="Sandbox clock moved to")
    flash.wait_for(timeout=120_000)
    assert "invoices:" in flash.inner_text() and "paid" in flash.inner_text()
    assert page.locator("#clock-now").inner_text() != shown
    assert "/admin/tenants/initech" in page.url
    assert invoices.count() == before + 1
    assert invoices.filter(has_text="$499.00").filter(has_text="paid").count() == 1
    assert page.locator("#tenant-state").inner_text() == "Active"
