"""`meterbill sandbox`: run the local Stripe sandbox on a port (no subcommand), or, beside a
sandbox-mode `meterbill serve`, move its time: `meterbill sandbox advance --days N | --to DATE |
--to-next-renewal`.

`advance` asks the running server (`POST /admin/sandbox/advance`): it holds the sandbox whose
test clocks move and receives the webhooks that follow, and it answers once they are handled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from .context import CliFailure, cli_context, reported
from .output import JsonFlag, console, show, table

sandbox_app = typer.Typer(help="The local Stripe sandbox: run it, or move its time.")


@sandbox_app.command("advance")
def advance(
    ctx: typer.Context,
    days: Annotated[float | None, typer.Option("--days", help="Move time this many days.")]
    = None,
    to: Annotated[datetime | None, typer.Option(
        "--to", help="Move time to this date (UTC unless it says otherwise).")] = None,
    to_next_renewal: Annotated[bool, typer.Option(
        "--to-next-renewal", help="Move time just past the next renewal (or trial end).")]
    = False,
    as_json: JsonFlag = False,
) -> None:
    """Move the sandbox's test clocks forward and show what happened: invoices made, paid and
    failed, dunning steps, emails."""
    cli = cli_context(ctx)
    if sum((days is not None, to is not None, to_next_renewal)) != 1:
        raise CliFailure("invalid_input", "Give exactly one of --days N, --to DATE and "
                         "--to-next-renewal.", exit_code=2)
    body: dict[str, Any] = {"days": days, "to_next_renewal": to_next_renewal,
                            "to": (to if to is None or to.tzinfo else to.replace(tzinfo=UTC))}
    if body["to"] is not None:
        body["to"] = body["to"].isoformat()
    with reported(as_json):
        with cli.running_server(announce=None) as server:
            if server is None:
                raise CliFailure("server_not_running", (
                    "Moving the sandbox's time needs the running `meterbill serve` in sandbox "
                    "mode: it holds the sandbox and handles the webhooks that follow. Fix: "
                    "start it (`make run`) and run this command again."), exit_code=2)
            if not as_json:
                console().print("Advancing the sandbox's test clocks (a day at a time) ...")
            report = server.advance_sandbox(body)
        show(report, as_json, *_tables(report))


def _tables(report: dict[str, Any]) -> list[Any]:
    invoices = report.get("invoices") or {}
    summary = table(
        f"Sandbox time {report['started'][:16]} → {report['reached'][:16]} "
        f"({report['clocks']} clock(s), {report['steps']} step(s), "
        f"{report['waited_seconds']} s)",
        ("invoices made", "finalized", "paid", "failed", "paid $", "failed $", "unhandled"),
        [(invoices.get("created", 0), invoices.get("finalized", 0), invoices.get("paid", 0),
          invoices.get("payment_failed", 0), _dollars(invoices.get("paid_cents", 0)),
          _dollars(invoices.get("failed_cents", 0)), report.get("unhandled", 0))])
    tables = [summary]
    if report.get("dunning"):
        tables.append(table("Dunning steps", ("at", "tenant", "from", "to", "detail"),
                            [(e["at"][:16], e["tenant_id"], e["from"], e["to"], e["detail"])
                             for e in report["dunning"]]))
    if report.get("emails"):
        tables.append(table("Emails", ("tenant", "kind", "to", "subject", "status"),
                            [(e["tenant_id"], e["kind"], e["to"], e["subject"], e["status"])
                             for e in report["emails"]]))
    return tables


def _dollars(cents: int) -> str:
    return f"{cents // 100:,}.{cents % 100:02d}"


def demo(
    ctx: typer.Context,
    tenants: Annotated[int, typer.Option("--tenants", min=1, max=200,
                                         help="How many tenants.")] = 25,
    days: Annotated[int | None, typer.Option(
        "--days", min=1, max=62, help="Start this many days back (default: a month).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Sandbox mode: seed tenants a month back and simulate their month of billing (what
    `make run` does on a new database), then show the end table."""
    cli = cli_context(ctx)
    with reported(as_json):
        with cli.running_server(announce=None) as server:
            if server is None:
                raise CliFailure("server_not_running", (
                    "The demo needs the running `meterbill serve` in sandbox mode: it holds "
                    "the sandbox and handles the webhooks that follow. Fix: start it (`make "
                    "run`) and run this command again."), exit_code=2)
            if not as_json:
                console().print("Simulating a month of billing (the server logs each day) ...")
            summary = server.demo({"tenants": tenants, "days": days})
        show(summary, as_json, *summary_tables(summary))


def summary_tables(summary: dict[str, Any]) -> list[Any]:
    """The demo's end table, for the CLI and `serve` on a new database."""
    invoices = summary.get("invoices") or {}
    return [
        table(f"A month of billing: {summary['started'][:10]} → {summary['ended'][:10]} "
              "(the sandbox's test clocks)", ("tenants by state", "count"),
              sorted((summary.get("states") or {}).items())),
        table("Invoices", ("made", "finalized", "paid", "failed attempts", "paid $",
                           "finalized $"),
              [(invoices.get("created", 0), invoices.get("finalized", 0),
                invoices.get("paid", 0), invoices.get("payment_failed", 0),
                _dollars(invoices.get("paid_cents", 0)),
                _dollars(invoices.get("finalized_cents", 0)))]),
        table("Usage", ("events sent", "sent twice", "late", "stored", "reported to Stripe",
                        "cancelled in Stripe", "caught by webhook"),
              [(summary["events_sent"], summary["duplicates"], summary["late"],
                summary["usage_stored"], summary["usage_reported"],
                summary.get("cancelled_in_stripe") or "-",
                "yes" if summary.get("caught") else "no")]),
    ]
