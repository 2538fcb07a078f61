"""Sandbox mode as one connected account: `meterbill serve` registers its own webhook endpoint in
the sandbox, every customer sits on a test clock, and `meterbill sandbox advance` moves time and
waits for what follows, with no other call."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from .test_multi_terminal import _free_port, _meterbill, _serve


def _token(clone: Path, env: dict[str, str]) -> dict[str, str]:
    """The development token the server keeps beside its database."""
    token = _meterbill(clone, "api-token", env=env).stdout.strip()
    return {"Authorization": f"Bearer {token}"}


def _ok(result: object) -> dict:  # type: ignore[type-arg]
    assert result.returncode == 0, result.stderr + result.stdout  # type: ignore[attr-defined]
    return json.loads(result.stdout)  # type: ignore[attr-defined,no-any-return]


def test_a_failing_card_advanced_eight_days_reaches_suspension(tmp_path: Path,
                                                               database_url: str) -> None:
    env = {"DATABASE_URL": database_url}  # SQLite, and PostgreSQL when the tests have it
    with _serve(tmp_path, _free_port(), env) as url:
        _ok(_meterbill(tmp_path, "tenants", "create", "t1", "--email", "t1@acme.test",
                       "--json", env=env))
        sub = _ok(_meterbill(tmp_path, "subscriptions", "create", "--tenant", "t1",
                             "--plan", "pro", "--trial-days", "1", "--payment-method",
                             "pm_card_chargeCustomerFail", "--json", env=env))
        assert sub["status"] == "trialing"

        # The trial ends: the first invoice is made, finalized an hour later and declined.
        first = _ok(_meterbill(tmp_path, "sandbox", "advance", "--to-next-renewal", "--json",
                               env=env))
        assert first["clocks"] == 1 and first["unhandled"] == 0
        assert first["invoices"]["created"] == 1 and first["invoices"]["payment_failed"] == 1
        assert first["invoices"]["failed_cents"] == 9900
        assert [e["to"] for e in first["dunning"]] == ["reminder"]
        assert [e["kind"] for e in first["emails"]] == ["dunning_reminder"]

        # Stripe retries on days 3, 6 and 7 after the first failure: eight days later the
        # tenant is suspended, by webhooks alone.
        report = _ok(_meterbill(tmp_path, "sandbox", "advance", "--days", "8", "--json",
                                env=env))
        assert report["clocks"] == 1 and report["steps"] == 8 and report["unhandled"] == 0
        started = datetime.fromisoformat(report["started"])
        reached = datetime.fromisoformat(report["reached"])
        assert started == datetime.fromisoformat(first["reached"])
        assert (reached - started).days == 8
        assert report["invoices"]["payment_failed"] == 3
        # The third retry fails on day 7 and Stripe cancels the subscription (its default
        # after the last retry), which ends access whatever the dunning step.
        assert [(e["to"], datetime.fromisoformat(e["at"]) - started) for e in report["dunning"]
                ] == [("warning", timedelta(days=3)), ("final_warning", timedelta(days=6)),
                      ("canceled", timedelta(days=7))]
        assert [e["kind"] for e in report["emails"]] == [
            "dunning_warning", "dunning_final_warning", "subscription_canceled"]
        # Each email is recorded at the clock's time of the step that sent it.
        assert [e["at"] for e in report["emails"]] == [e["at"] for e in report["dunning"]]
        # The warning names the suspension date on the test clock (a week after the first
        # failure, an hour after the trial ended), not a week after today.
        suspension = started - timedelta(hours=1) + timedelta(days=7)
        assert f"suspended on {suspension.day} {suspension:%B %Y}" in report["emails"][0][
            "subject"]

        with httpx.Client(base_url=url, headers=_token(tmp_path, env), timeout=30) as api:
            assert api.get("/tenants/t1/entitlement").json()["access"] == "none"
            # The timeline carries the test clock's days, not the seconds the advance took.
            timeline = api.get("/tenants/t1/timeline").json()["data"]
            days = sorted({datetime.fromisoformat(e["at"]).date() for e in timeline})
            assert len(days) == 4 and days[-1] < reached.date()
