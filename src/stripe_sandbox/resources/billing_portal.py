"""Billing portal sessions: `POST /v1/billing_portal/sessions` and the page its `url` serves.

The page lists the customer's subscriptions and invoices, each invoice linking to its
`hosted_invoice_url`. It is read-only: the portal's own actions (cancel, switch plan, update the
card) are not built. Every session uses one default portal configuration, made on first use,
as if it had been saved in the Dashboard.
"""

from __future__ import annotations

import datetime
import html
import secrets
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..engine import Call, Response
from ..errors import InvalidRequestError
from ..router import Routes
from ..wire import as_int
from .common import nullable, require

if TYPE_CHECKING:
    from ..engine import Sandbox

routes = Routes()

PAGE_PREFIX = "/p/session/"
_FLOW_TYPES = ("payment_method_update", "subscription_cancel", "subscription_update",
               "subscription_update_confirm")


def _default_configuration(call: Call) -> dict[str, Any]:
    for config in call.store.all("billing_portal.configuration"):
        if config.get("is_default"):
            return config
    config = {
        "id": call.store.new_id("bpc"),
        "object": "billing_portal.configuration",
        "active": True,
        "created": call.now(),
        "is_default": True,
        "livemode": False,
        "metadata": {},
    }
    return call.store.put(config)


def _customer_subscription(call: Call, customer_id: str, sub_id: Any, param: str) -> str:
    sub = call.store.require("subscription", sub_id, "subscription", param)
    if sub.get("customer") != customer_id:
        raise InvalidRequestError(
            f"The subscription {sub_id} does not belong to the customer {customer_id}.",
            param=param,
        )
    return str(sub_id)


def _flow(call: Call, customer_id: str, data: Any) -> dict[str, Any] | None:
    if data in (None, ""):
        return None
    if not isinstance(data, dict):
        raise InvalidRequestError("Invalid object", param="flow_data",
                                  code="parameter_invalid_object")
    kind = data.get("type")
    if kind not in _FLOW_TYPES:
        raise InvalidRequestError(
            f"Invalid flow_data[type]: must be one of {', '.join(_FLOW_TYPES)}.",
            param="flow_data[type]",
        )
    after = data.get("after_completion") or {}
    after_type = after.get("type", "portal_homepage")
    redirect = after.get("redirect") or {}
    if after_type == "redirect" and not redirect.get("return_url"):
        raise InvalidRequestError("Missing required param: flow_data[after_completion][redirect]"
                                  "[return_url].", code="parameter_missing",
                                  param="flow_data[after_completion][redirect][return_url]")
    flow: dict[str, Any] = {
        "after_completion": {
            "hosted_confirmation": (
                {"custom_message": (after.get("hosted_confirmation") or {}).get("custom_message")}
                if after_type == "hosted_confirmation" else None
            ),
            "redirect": {"return_url": redirect["return_url"]} if after_type == "redirect"
            else None,
            "type": after_type,
        },
        "customer_update": None,
        "subscription_cancel": None,
        "subscription_pause": None,
        "subscription_update": None,
        "subscription_update_confirm": None,
        "type": kind,
    }
    if kind != "payment_method_update":
        raw = data.get(kind)
        section: dict[str, Any] = raw if isinstance(raw, dict) else {}
        param = f"flow_data[{kind}][subscription]"
        if not section.get("subscription"):
            raise InvalidRequestError(f"Missing required param: {param}.", param=param,
                                      code="parameter_missing")
        sub_id = _customer_subscription(call, customer_id, section["subscription"], param)
        if kind == "subscription_cancel":
            flow[kind] = {"retention": section.get("retention"), "subscription": sub_id}
        elif kind == "subscription_update":
            flow[kind] = {"subscription": sub_id}
        else:
            items = section.get("items") or []
            flow[kind] = {
                "discounts": section.get("discounts"),
                "items": [{"id": i.get("id"), "price": i.get("price"),
                           "quantity": as_int(i["quantity"], f"flow_data[{kind}][items][{n}]"
                                              "[quantity]") if i.get("quantity") else None}
                          for n, i in enumerate(items) if isinstance(i, dict)],
                "subscription": sub_id,
            }
    return flow


@routes.post("/v1/billing_portal/sessions")
def create(call: Call) -> dict[str, Any]:
    p = call.params
    if p.get("customer_account"):
        raise InvalidRequestError("The sandbox supports portal sessions for `customer` only, "
                                  "not `customer_account`.", param="customer_account")
    customer_id = require(p, "customer")
    customer = call.store.require("customer", customer_id, "customer", "customer")
    if customer.get("deleted"):
        raise InvalidRequestError(f"No such customer: '{customer_id}'", param="customer",
                                  code="resource_missing", status=404)
    if p.get("configuration"):
        config = call.store.require("billing_portal.configuration", p["configuration"],
                                    "configuration", "configuration")
    else:
        config = None
    flow = _flow(call, customer_id, p.get("flow_data"))
    config = config or _default_configuration(call)
    token = "test_" + secrets.token_urlsafe(24)
    session = {
        "id": call.store.new_id("bps"),
        "object": "billing_portal.session",
        "configuration": config["id"],
        "created": call.now(customer.get("test_clock")),
        "customer": customer_id,
        "customer_account": None,
        "flow": flow,
        "livemode": False,
        "locale": nullable(p.get("locale")),
        "on_behalf_of": nullable(p.get("on_behalf_of")),
        "return_url": nullable(p.get("return_url")),
        "url": f"{call.sandbox.config.public_url.rstrip('/')}{PAGE_PREFIX}{token}",
        "_token": token,
    }
    return call.store.put(session)


# --- the page ---------------------------------------------------------------------------------


def _money(amount: Any, currency: Any) -> str:
    if amount is None:
        return "-"
    value = Decimal(int(amount)) / 100
    return f"{value:,.2f} {str(currency or '').upper()}".strip()


def _date(stamp: Any) -> str:
    if not stamp:
        return "-"
    return datetime.datetime.fromtimestamp(int(stamp), datetime.UTC).strftime("%Y-%m-%d")


def _price_label(sandbox: Sandbox, price: Any) -> str:
    if isinstance(price, str):
        price = sandbox.store.get("price", price) or {"id": price}
    if not isinstance(price, dict):
        return "-"
    product = price.get("product")
    if isinstance(product, str):
        product = sandbox.store.get("product", product) or {"name": product}
    name = price.get("nickname") or (product or {}).get("name") or price.get("id", "-")
    recurring = price.get("recurring") or {}
    amount = price.get("unit_amount")
    if amount is None and price.get("billing_scheme") == "tiered":
        cost = "tiered"
    elif amount is None:
        cost = "metered"
    else:
        cost = _money(amount, price.get("currency"))
    interval = f" / {recurring['interval']}" if recurring.get("interval") else ""
    return f"{name} ({cost}{interval})"


def _subscription_rows(sandbox: Sandbox, customer_id: str) -> str:
    rows = []
    subs = [s for s in sandbox.store.all("subscription") if s.get("customer") == customer_id]
    for sub in reversed(subs):
        items = (sub.get("items") or {}).get("data") or []
        plans = "<br>".join(html.escape(_price_label(sandbox, i.get("price"))) for i in items)
        period_end = max((i.get("current_period_end") or 0 for i in items), default=0)
        note = " (cancels at period end)" if sub.get("cancel_at_period_end") else ""
        rows.append(
            f"<tr><td>{html.escape(sub['id'])}</td><td>{html.escape(str(sub.get('status')))}"
            f"{note}</td><td>{plans or '-'}</td><td>{_date(period_end)}</td></tr>"
        )
    if not rows:
        return "<p>No subscriptions.</p>"
    return ("<table><tr><th>Subscription</th><th>Status</th><th>Plan</th>"
            "<th>Current period ends</th></tr>" + "".join(rows) + "</table>")


def _invoice_rows(sandbox: Sandbox, customer_id: str) -> str:
    rows = []
    invoices = [i for i in sandbox.store.all("invoice") if i.get("customer") == customer_id]
    invoices.sort(key=lambda i: i.get("created") or 0, reverse=True)
    for inv in invoices:
        label = html.escape(str(inv.get("number") or inv["id"]))
        link = inv.get("hosted_invoice_url")
        cell = f'<a href="{html.escape(link, quote=True)}">{label}</a>' if link else label
        rows.append(
            f"<tr><td>{cell}</td><td>{_date(inv.get('created'))}</td>"
            f"<td>{html.escape(str(inv.get('status')))}</td>"
            f"<td>{_money(inv.get('amount_due'), inv.get('currency'))}</td></tr>"
        )
    if not rows:
        return "<p>No invoices.</p>"
    return ("<table><tr><th>Invoice</th><th>Date</th><th>Status</th><th>Amount due</th></tr>"
            + "".join(rows) + "</table>")


def render(sandbox: Sandbox, session: dict[str, Any]) -> str:
    customer = sandbox.store.get("customer", session["customer"]) or {}
    who = customer.get("name") or customer.get("email") or session["customer"]
    back = session.get("return_url")
    back_link = (f'<p><a href="{html.escape(back, quote=True)}">&larr; Return</a></p>'
                 if back else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Billing portal</title>
<style>body{{font-family:sans-serif;max-width:52rem;margin:2rem auto}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.4rem;
text-align:left}}</style></head>
<body><p><em>Stripe sandbox (test mode)</em></p>
<h1>Billing for {html.escape(str(who))}</h1>{back_link}
<h2>Subscriptions</h2>{_subscription_rows(sandbox, session["customer"])}
<h2>Invoices</h2>{_invoice_rows(sandbox, session["customer"])}
</body></html>"""


def portal_page(sandbox: Sandbox, method: str, url: str, headers: dict[str, str],
                body: bytes) -> Response | None:
    path = urlsplit(url).path
    if not path.startswith(PAGE_PREFIX):
        return None
    token = path[len(PAGE_PREFIX):]
    session = next((s for s in sandbox.store.all("billing_portal.session")
                    if s.get("_token") == token), None)
    if session is None or method not in ("GET", "HEAD"):
        return Response(404, b"This portal session does not exist.",
                        {"Content-Type": "text/plain; charset=utf-8"})
    return Response(200, render(sandbox, session).encode(),
                    {"Content-Type": "text/html; charset=utf-8"})


pages = [portal_page]
