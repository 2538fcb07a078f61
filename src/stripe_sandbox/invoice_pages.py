"""The hosted invoice page and the invoice PDF behind `hosted_invoice_url` / `invoice_pdf`.

Both links are `{public_url}/invoice/{invoice id}/{secret}` (and `/pdf`): like Stripe's, they
need no API key, so the unguessable secret is what protects them. The PDF is written by hand —
PDF 1.4, the standard Helvetica font, one page per 40 lines — so no dependency is needed.

An open invoice's page has a form that pays it with the invoice's payment method, or with a
test card token typed in when it has none (an emailed invoice: `pm_card_visa` by default): a
POST to `{page}/pay`, answered with a redirect back to the page, as a browser expects. When the
payment intent waits in `requires_action` (a 3-D Secure card), the button is "Authenticate and
pay": posting it stands for the customer passing the bank's challenge, so the charge is made
as authenticated. Paying here emits what paying through the API emits (`invoice.paid`,
`invoice.payment_succeeded`, and `customer.subscription.updated` when an `incomplete`
subscription becomes `active`); a declined card shows the decline on the page (402).
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .billing_math import format_money

if TYPE_CHECKING:
    from .engine import Response, Sandbox

_PATH = re.compile(r"^/invoice/(in_[A-Za-z0-9]+)/([A-Za-z0-9_-]+)(/pdf|/pay)?/?$")
_LINES_PER_PAGE = 40


def serve(sandbox: Sandbox, method: str, url: str, headers: dict[str, str],
          body: bytes) -> Response | None:
    from .engine import Response

    found = _PATH.match(urlsplit(url).path)
    if found is None:
        return None
    invoice = sandbox.store.get("invoice", found.group(1))
    if invoice is None or invoice.get("_page_secret") != found.group(2) or (
        invoice["status"] == "draft"
    ):
        return Response(404, b"Invoice not found", {"Content-Type": "text/plain"})
    if found.group(3) == "/pay":
        if method != "POST":
            return Response(405, b"Method not allowed", {"Content-Type": "text/plain",
                                                          "Allow": "POST"})
        return _pay(sandbox, invoice, invoice.get("hosted_invoice_url") or url, body)
    if method not in ("GET", "HEAD"):
        return Response(405, b"Method not allowed", {"Content-Type": "text/plain",
                                                      "Allow": "GET, HEAD"})
    if found.group(3):
        pdf = render_pdf(sandbox, invoice)
        name = invoice.get("number") or invoice["id"]
        return Response(200, pdf, {"Content-Type": "application/pdf",
                                   "Content-Disposition": f'inline; filename="{name}.pdf"'})
    return Response(200, render_html(sandbox, invoice).encode(),
                    {"Content-Type": "text/html; charset=utf-8"})


def _intent(sandbox: Sandbox, invoice: dict[str, Any]) -> dict[str, Any] | None:
    for payment in invoice["_payments"]["data"]:
        intent_id = (payment.get("payment") or {}).get("payment_intent")
        if payment.get("is_default") and intent_id:
            found: dict[str, Any] | None = sandbox.store.get("payment_intent", intent_id)
            return found
    return None


def _pay(sandbox: Sandbox, invoice: dict[str, Any], page_url: str, body: bytes) -> Response:
    """The customer pressed the page's pay button (after authenticating, for 3-D Secure), with
    the invoice's payment method, or a test card token typed into the form (an emailed
    invoice has none)."""
    from . import invoicing
    from .engine import Call, Response
    from .resources.payment_methods import _from_token

    if invoice["status"] != "open" or invoice["amount_remaining"] <= 0:
        return Response(303, b"", {"Location": page_url})  # nothing to pay: show the page
    at = sandbox.now(invoice.get("test_clock"))
    token = (parse_qs(body.decode("utf-8", errors="replace")).get("payment_method") or [""])[0]
    if token:
        pm = _from_token(Call(sandbox, "POST", f"/invoice/{invoice['id']}/pay", {}, "req_page"),
                         token, at)
        if pm is None:
            return Response(400, b"Unknown test card token", {"Content-Type": "text/plain"})
        sandbox.store.put(pm)
    else:
        intent = _intent(sandbox, invoice) or {}
        pm = sandbox.store.get("payment_method", intent.get("payment_method") or "") \
            or invoicing.payment_method_for(sandbox, invoice)
    if pm is None:
        return Response(402, render_html(sandbox, invoice, "No payment method to charge.")
                        .encode(), {"Content-Type": "text/html; charset=utf-8"})
    paid = invoicing.attempt(sandbox, invoice, at, automatic=False, pm=pm, authenticated=True)
    if paid and token:
        _save_on_subscription(sandbox, invoice, pm)
    if not paid:
        error = (_intent(sandbox, invoice) or {}).get("last_payment_error") or {}
        return Response(402, render_html(sandbox, invoice, error.get("message") or "Declined.")
                        .encode(), {"Content-Type": "text/html; charset=utf-8"})
    return Response(303, b"", {"Location": page_url})


def _save_on_subscription(sandbox: Sandbox, invoice: dict[str, Any], pm: dict[str, Any]) -> None:
    """`payment_settings[save_default_payment_method]=on_subscription`: the card that paid the
    subscription's invoice is attached to the customer and becomes the subscription's default."""
    from . import invoicing
    from .subscription_state import emit_updated, snapshot

    sub = sandbox.store.get("subscription", invoicing.subscription_of(invoice) or "")
    if sub is None or (sub.get("payment_settings") or {}).get(
            "save_default_payment_method") != "on_subscription":
        return
    pm["customer"] = invoice["customer"]
    sandbox.emit("payment_method.attached", pm)
    before = snapshot(sub)
    sub["default_payment_method"] = pm["id"]
    emit_updated(sandbox, sub, before)


def _day(ts: int | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%b %d, %Y")


def _money(invoice: dict[str, Any], cents: int) -> str:
    return format_money(cents, invoice["currency"])


def summary(sandbox: Sandbox, invoice: dict[str, Any]) -> dict[str, Any]:
    """What both renderings show."""
    customer = sandbox.store.get("customer", invoice["customer"]) or {}
    rows = []
    for line in invoice["lines"]["data"]:
        span = line.get("period") or {}
        when = f"{_day(span.get('start'))} – {_day(span.get('end'))}" if span else ""
        rows.append((line.get("description") or "", when, str(line.get("quantity") or ""),
                     _money(invoice, line["amount"])))
    return {
        "number": invoice.get("number") or invoice["id"],
        "status": invoice["status"],
        "customer": invoice.get("customer_name") or invoice.get("customer_email")
        or customer.get("email") or invoice["customer"],
        "issued": _day(invoice["status_transitions"].get("finalized_at") or invoice["created"]),
        "due": _day(invoice.get("due_date")),
        "rows": rows,
        "subtotal": _money(invoice, invoice["subtotal"]),
        "total": _money(invoice, invoice["total"]),
        "paid": _money(invoice, invoice["amount_paid"]),
        "due_amount": _money(invoice, invoice["amount_remaining"]),
    }


def render_html(sandbox: Sandbox, invoice: dict[str, Any], error: str | None = None) -> str:
    from . import invoicing

    s = summary(sandbox, invoice)
    e = html.escape
    form = ""
    if invoice["status"] == "open" and invoice["amount_remaining"] > 0:
        action = (_intent(sandbox, invoice) or {}).get("status") == "requires_action"
        label = "Authenticate and pay" if action else "Pay"
        note = ("<p>Your bank asks you to confirm this payment (3-D Secure).</p>"
                if action else "")
        target = e((invoice.get("hosted_invoice_url") or "") + "/pay")
        # Without a payment method (an emailed invoice) the customer gives a test card.
        card = "" if invoicing.payment_method_for(sandbox, invoice) is not None else (
            '<label>Card <input name="payment_method" value="pm_card_visa"></label> ')
        form = (f'{note}<form method="post" action="{target}">{card}'
                f'<button type="submit" name="pay" value="1">{e(label)} '
                f'{e(s["due_amount"])}</button></form>')
    if error:
        form = f'<p class="error" role="alert">{e(error)}</p>' + form
    rows = "\n".join(
        f"<tr><td>{e(d)}</td><td>{e(p)}</td><td class=n>{e(q)}</td><td class=n>{e(a)}</td></tr>"
        for d, p, q, a in s["rows"]
    )
    due = f"<p>Due {e(s['due'])}</p>" if s["due"] else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Invoice {e(s['number'])}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;color:#1a1f36}}
table{{width:100%;border-collapse:collapse}} td,th{{padding:.4rem;border-bottom:1px solid #e3e8ee;
text-align:left}} .n{{text-align:right}} .status{{text-transform:uppercase;font-weight:600}}
</style></head><body>
<h1>Invoice {e(s['number'])}</h1>
<p class="status">{e(s['status'])}</p>
<p>Billed to {e(s['customer'])} · issued {e(s['issued'])}</p>{due}
<table><thead><tr><th>Description</th><th>Period</th><th class=n>Qty</th>
<th class=n>Amount</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<p class=n>Subtotal {e(s['subtotal'])}<br>Total {e(s['total'])}<br>
Amount paid {e(s['paid'])}<br><strong>Amount remaining {e(s['due_amount'])}</strong></p>
{form}
<p><small>Stripe sandbox — test mode, no real payment.</small></p>
</body></html>
"""


def _pdf_text(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _page_stream(lines: list[tuple[int, int, int, str]]) -> bytes:
    out = [b"BT"]
    for x, y, size, text in lines:
        out.append(b"/F1 %d Tf 1 0 0 1 %d %d Tm (" % (size, x, y) + _pdf_text(text) + b") Tj")
    out.append(b"ET")
    return b"\n".join(out)


def render_pdf(sandbox: Sandbox, invoice: dict[str, Any]) -> bytes:
    s = summary(sandbox, invoice)
    head = [
        (50, 790, 18, f"Invoice {s['number']}"),
        (50, 768, 10, f"Status: {s['status']}    Issued: {s['issued']}"
         + (f"    Due: {s['due']}" if s["due"] else "")),
        (50, 754, 10, f"Billed to: {s['customer']}"),
        (50, 726, 10, "Description"), (400, 726, 10, "Qty"), (480, 726, 10, "Amount"),
    ]
    pages: list[list[tuple[int, int, int, str]]] = []
    rows = s["rows"] or [("(no lines)", "", "", "")]
    for start in range(0, len(rows), _LINES_PER_PAGE):
        page = list(head) if start == 0 else [(50, 790, 10, f"Invoice {s['number']} (cont.)")]
        y = 708 if start == 0 else 770
        for description, _, quantity, amount in rows[start:start + _LINES_PER_PAGE]:
            page += [(50, y, 9, description[:70]), (400, y, 9, quantity), (480, y, 9, amount)]
            y -= 16
        pages.append(page)
    last = pages[-1]
    y = min(t[1] for t in last) - 28
    last += [(380, y, 10, f"Subtotal   {s['subtotal']}"),
             (380, y - 14, 10, f"Total   {s['total']}"),
             (380, y - 28, 10, f"Paid   {s['paid']}"),
             (380, y - 42, 11, f"Remaining   {s['due_amount']}")]
    return _assemble([_page_stream(p) for p in pages])


def _assemble(streams: list[bytes]) -> bytes:
    """A PDF file: catalog, page tree, one font, then a page and a content stream per page."""
    n = len(streams)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, stream in enumerate(streams):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)
