"""The hosted invoice page and the invoice PDF behind `hosted_invoice_url` / `invoice_pdf`.

Both links are `{public_url}/invoice/{invoice id}/{secret}` (and `/pdf`): like Stripe's, they
need no API key, so the unguessable secret is what protects them. An open invoice's page has
a pay form (`POST .../pay`, a test card token such as `pm_card_visa`, the default), which
charges that card once, as a customer paying an emailed invoice would. The PDF is written by hand —
PDF 1.4, the standard Helvetica font, one page per 40 lines — so no dependency is needed.
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
        return _pay(sandbox, invoice, body)
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


def _pay(sandbox: Sandbox, invoice: dict[str, Any], body: bytes) -> Response:
    """The customer pays on the page with a test card: one charge; the page again, or 402."""
    from . import invoicing
    from .engine import Call, Response
    from .resources.payment_methods import _from_token

    if invoice["status"] != "open":
        return Response(409, f"This invoice is {invoice['status']}.".encode(),
                        {"Content-Type": "text/plain"})
    form = parse_qs(body.decode("utf-8", errors="replace"))
    token = (form.get("payment_method") or ["pm_card_visa"])[0]
    at = sandbox.now(invoice.get("test_clock"))
    call = Call(sandbox, "POST", f"/invoice/{invoice['id']}/pay", {}, "req_page")
    pm = _from_token(call, token, at)
    if pm is None:
        return Response(400, b"Unknown test card token", {"Content-Type": "text/plain"})
    sandbox.store.put(pm)
    paid = invoicing.attempt(sandbox, invoice, at, automatic=False, pm=pm)
    return Response(200 if paid else 402, render_html(sandbox, invoice).encode(),
                    {"Content-Type": "text/html; charset=utf-8"})


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


def render_html(sandbox: Sandbox, invoice: dict[str, Any]) -> str:
    s = summary(sandbox, invoice)
    e = html.escape
    rows = "\n".join(
        f"<tr><td>{e(d)}</td><td>{e(p)}</td><td class=n>{e(q)}</td><td class=n>{e(a)}</td></tr>"
        for d, p, q, a in s["rows"]
    )
    due = f"<p>Due {e(s['due'])}</p>" if s["due"] else ""
    if invoice["status"] == "open":
        due += ('<form method="post" action="' + e(invoice["hosted_invoice_url"] or "")
                + '/pay"><input name="payment_method" value="pm_card_visa">'
                  '<button>Pay</button></form>')
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
