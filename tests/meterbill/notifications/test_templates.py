"""Every notice kind renders its subject, text and HTML: amounts, links, dates, escaping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meterbill.adapters.email_templates import (
    KINDS,
    PROVIDED,
    EmailRenderer,
    format_date,
    money,
)
from meterbill.ports.notify import MissingFacts, TemplateFailure

PORTAL = "https://billing.example/billing/portal/acme?expires=1&sig=abc"

FACTS: dict[str, Any] = {
    "tenant_name": "Acme <Tools> & Co", "email": "ap@acme.test", "amount_due": 123456,
    "amount_paid": 123456, "currency": "eur", "invoice_id": "in_42",
    "invoice_url": "https://pay.example/i/in_42?a=1&b=2", "attempt_count": 2,
    "next_step": "suspension", "next_step_at": "2026-12-04T10:00:00+00:00",
    "suspension_at": "2026-12-08T00:00:00Z", "customer_id": "cus_1", "plan": "pro",
    "trial_end": "2026-12-01T00:00:00+00:00", "subject": "Drift <found>",
    "detail": "Usage for acme drifted by 12 <units>", "portal_url": PORTAL,
    "tenant_id": "acme", "public_base_url": "https://billing.example",
    "due_date": "2026-12-31T09:00:00+00:00", "days_past_due": 15, "access": "reduced",
    "invoice_number": "ACME-0001",
}


def facts_for(kind: str) -> dict[str, Any]:
    """Only what the kind requires (plus what the notifier adds): the least it must cope with."""
    spec = KINDS[kind]
    return {name: FACTS[name] for name in spec.required + PROVIDED if name in FACTS}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_renders_subject_text_and_html(kind: str) -> None:
    email = EmailRenderer().render(kind, FACTS)
    assert email.subject and "\n" not in email.subject
    assert email.text.strip() and email.html.lstrip().startswith("<!DOCTYPE html>")
    if KINDS[kind].to_admin:
        assert "Drift <found>" in email.subject  # a subject line is not HTML
        assert "12 <units>" in email.text and "12 &lt;units&gt;" in email.html
        return
    assert "Hello Acme <Tools> & Co," in email.text
    assert "Acme &lt;Tools&gt; &amp; Co" in email.html and "<Tools>" not in email.html
    # How to update the card: the billing-portal link, in both bodies.
    assert PORTAL in email.text
    assert 'href="https://billing.example/billing/portal/acme?expires=1&amp;sig=abc"' in \
        email.html


@pytest.mark.parametrize("kind", sorted(k for k in KINDS if not KINDS[k].to_admin))
def test_every_tenant_kind_renders_with_only_its_required_facts(kind: str) -> None:
    email = EmailRenderer().render(kind, facts_for(kind))
    assert "None" not in email.text and "None" not in email.html
    assert PORTAL in email.text
    if kind.startswith("dunning_"):  # no invoice link (a manual step): pay in the portal
        assert "Pay it in the billing portal" in email.text
        assert "Pay it in the billing portal" in email.html


@pytest.mark.parametrize("kind", ["dunning_reminder", "dunning_warning",
                                  "dunning_final_warning", "dunning_suspended"])
def test_dunning_emails_carry_amount_invoice_link_and_dates(kind: str) -> None:
    email = EmailRenderer().render(kind, FACTS)
    assert "€1,234.56" in email.subject
    assert "€1,234.56" in email.text and "€1,234.56" in email.html
    assert "https://pay.example/i/in_42?a=1&b=2" in email.text
    assert 'href="https://pay.example/i/in_42?a=1&amp;b=2"' in email.html
    if kind in ("dunning_warning", "dunning_final_warning"):
        assert "8 December 2026" in email.text  # the suspension date, named
        assert "8 December 2026" in email.html
    if kind == "dunning_reminder":
        assert "4 December 2026" in email.text  # the next attempt
        assert "your account is suspended" in email.text  # next_step "suspension", in words


def test_payment_received_and_trial_emails() -> None:
    renderer = EmailRenderer()
    paid = renderer.render("payment_received", {**FACTS, "amount_paid": 4900,
                                                 "currency": "usd"})
    assert paid.subject == "Payment received: $49.00, thank you"
    trial = renderer.render("trial_ending_no_payment_method", FACTS)
    assert "1 December 2026" in trial.subject and "pro plan" in trial.text


def test_a_missing_fact_is_a_clear_error() -> None:
    facts = {k: v for k, v in FACTS.items() if k not in ("amount_due", "invoice_url")}
    with pytest.raises(MissingFacts, match="lacks the fact\\(s\\) amount_due:"):
        EmailRenderer().render("dunning_reminder", facts)
    with pytest.raises(MissingFacts, match="lacks the fact\\(s\\) currency"):
        EmailRenderer().render("dunning_warning", {**FACTS, "currency": None})
    with pytest.raises(MissingFacts, match="no templates for notice kind 'dunning_typo'"):
        EmailRenderer().render("dunning_typo", FACTS)


def test_money_and_dates() -> None:
    assert money(2900, "usd") == "$29.00"
    assert money(5, "gbp") == "£0.05"
    assert money(1500, "jpy") == "1,500 JPY"  # zero-decimal: no cents
    assert money(990, "sek") == "SEK 9.90"
    with pytest.raises(TemplateFailure, match="integer cents"):
        money(29.0, "usd")
    assert format_date(1796083200) == "1 December 2026"
    assert format_date("2026-12-01") == "1 December 2026"
    assert format_date(None) == "-"


def test_templates_dir_overrides_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "dunning_reminder.txt").write_text(
        '{% extends "email/_bare.txt" %}'
        "{% block subject %}Pay up: {{ amount_due | money(currency) }}{% endblock %}"
        "{% block body %}Custom body for {{ tenant_name }}: {{ invoice_url }}{% endblock %}")
    renderer = EmailRenderer(tmp_path)
    email = renderer.render("dunning_reminder", FACTS)
    assert email.subject == "Pay up: €1,234.56"
    assert email.text == ("Custom body for Acme <Tools> & Co: "
                          "https://pay.example/i/in_42?a=1&b=2\n")
    assert "&lt;Tools&gt;" in email.html  # the HTML body is still the built-in one
    assert renderer.render("dunning_warning", FACTS).subject.startswith("Action needed")


def test_a_broken_override_names_the_problem(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "dunning_reminder.txt").write_text(
        '{% extends "email/_layout.txt" %}{% block subject %}Hi{% endblock %}'
        "{% block body %}{{ no_such_fact }}{% endblock %}")
    with pytest.raises(TemplateFailure, match="no_such_fact"):
        EmailRenderer(tmp_path).render("dunning_reminder", FACTS)
    (tmp_path / "email" / "dunning_reminder.txt").write_text(
        "{% block subject %}Hi{% endblock %}Body")
    with pytest.raises(TemplateFailure, match="must begin with"):
        EmailRenderer(tmp_path).render("dunning_reminder", FACTS)
