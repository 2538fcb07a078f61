"""Jinja2 pages for the console and the customer billing page, with their filters.

Money is formatted by the domain's `format_cents`; a date is sent as `<time datetime=...>` in
UTC and shown in the viewer's locale by console.js (the UTC text stays for no-JS readers).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from meterbill.domain.money import format_cents, format_unit_amount
from meterbill.domain.tenant_states import LABELS

from .charts import bar_chart

# No framing by others, nothing from elsewhere; inline SVG needs no resource.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}


def _money(cents: int | None, currency: str | None = "usd") -> str:
    return "—" if cents is None else format_cents(int(cents), currency or "usd")


def _unit(cents: str | Decimal | None, currency: str | None = "usd") -> str:
    return "—" if cents is None else format_unit_amount(Decimal(str(cents)), currency or "usd")


def _number(value: int | None) -> str:
    return "—" if value is None else f"{int(value):,}"


def _when(value: datetime | date | None, style: str = "datetime") -> Markup:
    if value is None:
        return Markup("—")
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M UTC") if style == "datetime" \
            else value.strftime("%Y-%m-%d")
    else:
        text = value.isoformat()
    return Markup('<time datetime="{}" data-style="{}">{}</time>').format(
        value.isoformat(), style, text)


def _state(value: str) -> Markup:
    return Markup('<span class="state state-{}">{}</span>').format(
        value, LABELS.get(value, value.replace("_", " ")))


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("meterbill", "templates"),
                      autoescape=select_autoescape(["html"]))
    env.filters.update(money=_money, unit=_unit, number=_number, when=_when, state=_state)
    env.globals.update(bar_chart=bar_chart)
    return env


ENV = _environment()


def page(request: Request, template: str, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    container = request.app.state.container
    context.setdefault("mode", container.settings.mode)
    context.setdefault("session", getattr(request.state, "console_session", None))
    if context["mode"] == "sandbox" and context["session"] is not None:
        from .sandbox import clock_now

        context.setdefault("clock_now", clock_now(container))
    context.setdefault("path", request.url.path)
    for message in ("done", "failed"):  # what an action redirected back with (`back_to`)
        context.setdefault(message, request.query_params.get(message))
    body = ENV.get_template(template).render(request=request, **context)
    return HTMLResponse(body, status_code=status_code, headers=HEADERS)

