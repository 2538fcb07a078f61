"""`meterbill invoices review ...`: the review queue of invoice verification
(docs/invoice-verification.md).

`list` shows held drafts (or `--status all`) with what differs in one line; `show` one with
both versions of its lines; `figures` the counts, amount held, time to review and the share
verified before finalization; `approve`, `correct` and `void` act on a held draft, recorded
with `--by` and `--reason`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from meterbill.adapters.db.invoice_checks import STATUSES
from meterbill.domain.money import format_cents
from meterbill.services.invoices.review import ReviewItem

from .context import CliFailure, cli_context, reported
from .output import JsonFlag, key_values, show, table

invoices_app = typer.Typer(help="Invoices: the review queue of invoice verification.",
                           no_args_is_help=True)
review_app = typer.Typer(help="Held invoices: list, show, figures, approve, correct, void.",
                         no_args_is_help=True)
invoices_app.add_typer(review_app, name="review")

COLUMNS = ("invoice_id", "tenant_id", "status", "stripe", "meterbill", "summary")
By = Annotated[str, typer.Option("--by", help="Who acts (a name or an email).")]
Reason = Annotated[str, typer.Option("--reason", help="Why; kept with the invoice's review.")]


def _row(item: ReviewItem) -> list[Any]:
    expected = (format_cents(item.expected_total, item.currency)
                if item.expected_total is not None else "")
    return [item.invoice_id, item.tenant_id, item.status,
            format_cents(item.stripe_total, item.currency), expected, item.summary]


@review_app.command("list")
def review_list(
    ctx: typer.Context,
    status: Annotated[str, typer.Option(
        help=f"{', '.join(STATUSES)}, or all.")] = "held",
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Checked invoices, newest first: held ones unless --status says otherwise."""
    cli = cli_context(ctx)
    with reported(as_json):
        if status != "all" and status not in STATUSES:
            raise CliFailure("invalid_status", f"--status {status!r}: use one of "
                             f"{', '.join(STATUSES)}, or all.", exit_code=2)
        with cli.container(needs_stripe=False) as container:
            items = container.invoice_review.list(
                status=None if status == "all" else status, tenant_id=tenant, limit=limit)
        show({"data": [i.to_dict() for i in items], "count": len(items)}, as_json,
             table(f"Invoices ({status}: {len(items)})", COLUMNS, [_row(i) for i in items]))


@review_app.command("show")
def review_show(ctx: typer.Context,
                invoice_id: Annotated[str, typer.Argument(metavar="INVOICE")],
                as_json: JsonFlag = False) -> None:
    """One checked invoice: its summary, then Stripe's lines and meterbill's."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=False) as container:
        item = container.invoice_review.get(invoice_id)
        columns = ("plan", "part", "quantity", "amount", "start", "end", "label")
        show(item.to_dict(), as_json,
             key_values(f"Invoice {invoice_id}", {k: v for k, v in item.to_dict().items()
                                                  if not k.endswith("_lines")}),
             table("Stripe's lines", columns,
                   [[line.get(c) for c in columns] for line in item.stripe_lines]),
             table("meterbill's lines", columns,
                   [[line.get(c) for c in columns] for line in item.expected_lines]))


@review_app.command("figures")
def review_figures(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Verified, held, approved, corrected, voided, amount held, time to review, and the share
    of invoices verified before finalization (target 100%)."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=False) as container:
        figures = container.invoice_review.figures()
    data = figures.to_dict()
    share = figures.verified_before_finalization
    people = {**figures.counts, "amount held": format_cents(figures.amount_held),
              "median time to review (s)": figures.median_review_seconds,
              "verified before finalization": f"{share:.1%}" if share is not None else "-"}
    show(data, as_json, key_values("Invoice verification", people))


@review_app.command("approve")
def review_approve(ctx: typer.Context,
                   invoice_id: Annotated[str, typer.Argument(metavar="INVOICE")],
                   by: By, reason: Reason, as_json: JsonFlag = False) -> None:
    """Finalize a held invoice as Stripe drafted it; Stripe collects it as usual."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=True) as container:
        item = container.invoice_review.approve(invoice_id, by=by, reason=reason)
    show(item.to_dict(), as_json, table(None, COLUMNS, [_row(item)]))


@review_app.command("correct")
def review_correct(
    ctx: typer.Context,
    invoice_id: Annotated[str, typer.Argument(metavar="INVOICE")],
    by: By, reason: Reason,
    amount_cents: Annotated[int | None, typer.Option(
        help="The correction's amount (default: meterbill's total minus Stripe's).")] = None,
    description: Annotated[str | None, typer.Option(
        help="What the customer reads on the invoice.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add an invoice item for the difference, then finalize."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=True) as container:
        item = container.invoice_review.correct(invoice_id, by=by, reason=reason,
                                                amount_cents=amount_cents,
                                                description=description)
    show(item.to_dict(), as_json, table(None, COLUMNS, [_row(item)]))


@review_app.command("void")
def review_void(ctx: typer.Context,
                invoice_id: Annotated[str, typer.Argument(metavar="INVOICE")],
                by: By, reason: Reason, as_json: JsonFlag = False) -> None:
    """Void a held invoice: the customer is charged nothing for it."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=True) as container:
        item = container.invoice_review.void(invoice_id, by=by, reason=reason)
    show(item.to_dict(), as_json, table(None, COLUMNS, [_row(item)]))
