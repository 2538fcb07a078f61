"""Email templates: which notice kinds exist, the facts each needs, and rendering them.

Every kind has `email/<kind>.txt` (text body, with a `subject` block) and `email/<kind>.html`
(HTML body, autoescaped), in the package's `templates/email/` or, file by file, in
TEMPLATES_DIR (an operator's overrides win). Text templates extend `email/_layout.txt`
(greeting, portal link, footer) or `email/_bare.txt` (nothing around the body); the subject
block is rendered on its own.

A notice that lacks a required fact is refused with `MissingFacts` when it is enqueued, so a
caller's mistake is an error in its tests and never a half-empty email. Optional facts default
to None; templates say something sensible without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jinja2

from ..domain.money import format_cents
from ..ports.notify import KindSpec, MissingFacts, RenderedEmail, TemplateFailure

PACKAGE_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

# Currencies without a minor unit (Stripe's list): amounts are whole units, not cents.
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx",
                "vnd", "vuv", "xaf", "xof", "xpf"}


_INVOICE = ("amount_due", "currency")
# invoice_url is optional: the operator's manual dunning trigger names no invoice; the email
# then points to the billing portal.
_INVOICE_MORE = ("invoice_url", "invoice_id", "attempt_count", "next_step", "next_step_at",
                 "customer_id", "plan")
_TENANT = ("email",)  # the recipient; None means "no address": recorded as failed, not sent

KINDS: Mapping[str, KindSpec] = {
    "dunning_reminder": KindSpec(_TENANT + _INVOICE, ("tenant_name", "suspension_at")
                                 + _INVOICE_MORE),
    # Warnings name the suspension date when it is known (the Stripe-driven flow knows it;
    # the operator's manual step may not).
    "dunning_warning": KindSpec(_TENANT + _INVOICE, ("tenant_name", "suspension_at")
                                + _INVOICE_MORE),
    "dunning_final_warning": KindSpec(_TENANT + _INVOICE, ("tenant_name", "suspension_at")
                                      + _INVOICE_MORE),
    "dunning_suspended": KindSpec(_TENANT + _INVOICE, ("tenant_name", "suspension_at")
                                  + _INVOICE_MORE),
    "payment_received": KindSpec(_TENANT + ("amount_due", "currency"),
                                 ("tenant_name", "invoice_url", "amount_paid", "invoice_id",
                                  "customer_id", "plan")),
    "trial_ending_no_payment_method": KindSpec(_TENANT + ("trial_end",),
                                               ("tenant_name", "plan", "customer_id",
                                                "next_step", "next_step_at")),
    "trial_ended_suspended": KindSpec(_TENANT + ("trial_end",),
                                      ("tenant_name", "plan", "customer_id", "suspension_at",
                                       "invoice_url", "amount_due", "currency")),
    "subscription_canceled": KindSpec(_TENANT, ("tenant_name", "plan", "customer_id",
                                                "next_step_at", "suspension_at")),
    # A new subscription's first payment waits for the cardholder (3-D Secure).
    "payment_authentication_required": KindSpec(_TENANT + ("invoice_url",),
                                                ("tenant_name", "plan", "invoice_id",
                                                 "customer_id", "expires_in_hours")),
    "admin_alert": KindSpec(("subject", "detail"), ("tenant_name",), to_admin=True),
    # Sent from the console: the signed link to the customer's billing page (`billing_url`).
    "billing_link": KindSpec(_TENANT, ("tenant_name", "plan")),
    # Invoices sent by email (collection send_invoice): the invoice with its link and due date,
    # then the overdue steps of the policy's [overdue] section.
    "invoice_sent": KindSpec(_TENANT + _INVOICE + ("invoice_url", "due_date"),
                             ("tenant_name", "invoice_id", "invoice_number", "customer_id",
                              "plan")),
    "invoice_overdue": KindSpec(_TENANT + _INVOICE + ("due_date", "days_past_due", "access"),
                                ("tenant_name", "suspension_at") + _INVOICE_MORE),
}

# Facts the notifier adds itself; templates may use them for every kind.
PROVIDED = ("portal_url", "billing_url", "public_base_url", "tenant_id", "kind")

_STEP_PHRASES = {
    "retry": "we try the payment again",
    "reminder": "we try the payment again",
    "warning": "we try again and send a warning",
    "final_warning": "we try a last time; your service is then reduced",
    "soft_suspension": "your service is reduced (lower rate limits)",
    "reduced": "your service is reduced (lower rate limits)",
    "suspension": "your account is suspended",
    "overdue_warning": "we send a final warning",
    "overdue_reduced": "your service is reduced (lower rate limits)",
    "overdue_suspended": "your account is suspended",
    "suspended": "your account is suspended",
    "cancel": "your subscription ends",
}


def money(amount: Any, currency: Any = "usd") -> str:
    """Integer minor units and a currency code as people read them: 2900, usd → $29.00."""
    if amount is None:
        return "-"
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TemplateFailure(f"amounts are integer cents, not {type(amount).__name__} "
                              f"({amount!r})")
    code = str(currency or "usd").lower()
    if code in ZERO_DECIMAL:
        return f"{amount:,} {code.upper()}"
    return format_cents(amount, code)


def as_datetime(value: Any) -> datetime | None:
    """A fact's moment from an ISO string, a datetime, a date or Unix seconds (UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise TemplateFailure(f"not a date: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_date(value: Any) -> str:
    """`21 November 2026` (UTC); `-` when unknown."""
    moment = as_datetime(value)
    if moment is None:
        return "-"
    moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%B %Y}"


def step_phrase(step: Any) -> str:
    text = str(step or "").strip()
    return _STEP_PHRASES.get(text.lower(), text.replace("_", " "))


class EmailRenderer:
    """Renders a notice kind's subject, text and HTML from its facts."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        search = [str(templates_dir)] if templates_dir is not None else []
        search.append(str(PACKAGE_TEMPLATES))
        loader = jinja2.FileSystemLoader(search)
        common: dict[str, Any] = {"loader": loader, "undefined": jinja2.StrictUndefined,
                                  "keep_trailing_newline": True, "trim_blocks": True,
                                  "lstrip_blocks": True}
        self._text = jinja2.Environment(autoescape=False, **common)  # noqa: S701 (plain text)
        self._html = jinja2.Environment(autoescape=True, **common)
        self._checked: set[str] = set()
        for env in (self._text, self._html):
            env.filters.update(money=money, date=format_date, step=step_phrase)

    def _check_extends(self, name: str) -> None:
        """A text template must extend a layout: otherwise its subject block would be
        rendered into the body as well."""
        if name in self._checked:
            return
        assert self._text.loader is not None
        source, _, _ = self._text.loader.get_source(self._text, name)
        if self._text.parse(source).find(jinja2.nodes.Extends) is None:
            raise TemplateFailure(f'{name} must begin with {{% extends "email/_layout.txt" %}} '
                                  '(or "email/_bare.txt" for no greeting and footer), so that '
                                  "its subject block stays out of the body")
        self._checked.add(name)

    def spec(self, kind: str) -> KindSpec | None:
        return KINDS.get(kind)

    def missing(self, kind: str, facts: Mapping[str, Any]) -> list[str]:
        """Required facts that are absent or None (`email` may be None: no address, which
        the notifier records as a failed notice rather than an error)."""
        spec = KINDS[kind]
        return [name for name in spec.required
                if name not in facts or (facts[name] is None and name != "email")]

    def render(self, kind: str, facts: Mapping[str, Any]) -> RenderedEmail:
        """Raise `MissingFacts` for an absent required fact, `TemplateFailure` for a broken
        template; otherwise the email."""
        if kind not in KINDS:
            raise MissingFacts(f"no templates for notice kind {kind!r}; known kinds: "
                               f"{', '.join(sorted(KINDS))}")
        missing = self.missing(kind, facts)
        if missing:
            raise MissingFacts(f"notice {kind!r} lacks the fact(s) {', '.join(missing)}: put "
                               f"them (not None) in Notice.facts (required: "
                               f"{', '.join(KINDS[kind].required)})")
        spec = KINDS[kind]
        context = dict.fromkeys(spec.optional + PROVIDED)
        context.update(facts)
        context["kind"] = kind
        try:
            text_template = self._text.get_template(f"email/{kind}.txt")
            self._check_extends(f"email/{kind}.txt")
            subject_block = text_template.blocks.get("subject")
            if subject_block is None:
                raise TemplateFailure(f"email/{kind}.txt has no {{% block subject %}}")
            subject = "".join(subject_block(text_template.new_context(context)))
            text = text_template.render(context)
            html = self._html.get_template(f"email/{kind}.html").render(context)
        except jinja2.UndefinedError as error:
            raise TemplateFailure(f"template for {kind!r}: {error.message}; the facts are "
                                  f"{', '.join(sorted(context))}") from None
        except jinja2.TemplateError as error:
            raise TemplateFailure(f"template for {kind!r}: {type(error).__name__}: "
                                  f"{error}") from None
        return RenderedEmail(subject=" ".join(subject.split()), text=text.strip() + "\n",
                             html=html)
