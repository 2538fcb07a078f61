"""`meterbill usage sync` and `meterbill usage reconcile`, and the schedule `serve` runs.

`sync` reports what Stripe's meters lack (docs/usage-sync.md): by default yesterday, today and
every day of each tenant's open billing period; `--date D` one day; `--since D` every day from D.
`reconcile` compares the usage store with Stripe's meter summaries and records drifts. Both
exit 1 when a tenant failed (or drifted), so a cron job notices.

While `meterbill serve` holds the DuckDB usage store, both ask it (`POST /admin/usage/sync`,
`/admin/usage/reconcile`) and print its answer as they print their own report.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from meterbill.services.usage.sync import TenantResult

from .context import CliFailure, cli_context, reported
from .output import JsonFlag, err_console, note, show, table

log = logging.getLogger("meterbill.cli")

TenantOption = Annotated[list[str] | None, typer.Option(
    "--tenant", help="Only this tenant (repeat for more).")]
SYNC_COLUMNS = ("tenant", "status", "sent", "corrected", "calls", "reason")
RECONCILE_COLUMNS = ("tenant", "from", "to", "ours", "stripe", "ledger", "diff", "status",
                     "reason")
# Show a progress bar from this many tenants on (and never under --json).
PROGRESS_FROM = 20


def _day(option: str, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise CliFailure("invalid_date", f"{option} {text!r}: give a UTC day as YYYY-MM-DD "
                         "(e.g. 2026-05-01).", exit_code=2) from None


def sync(
    ctx: typer.Context,
    on_date: Annotated[str | None, typer.Option("--date", help="Sync this UTC day only "
                                                "(YYYY-MM-DD).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Sync every day from this one "
                                              "to today (late events: up to 35 days back).")]
    = None,
    tenants: TenantOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Report usage Stripe's meters lack: one meter event per tenant and day with new usage."""
    cli = cli_context(ctx)
    with reported(as_json):
        day, first = _day("--date", on_date), _day("--since", since)
        if day is not None and first is not None:
            raise CliFailure("usage", "Give --date or --since, not both.", exit_code=2)
        with cli.usage_server() as server:
            if server is not None:  # it holds the usage store: it syncs
                data = server.sync(day=day, since=first, tenants=tenants)
            else:
                with cli.container(needs_stripe=True) as container:
                    service = container.usage_sync
                    total = service.count_targets(tenants)
                    with _progress(total, as_json) as advance:
                        report = service.sync(days=[day] if day else None, since=first,
                                              tenants=tenants, on_result=advance)
                data = report.to_dict()
        _show_sync(data, as_json)


def _show_sync(data: dict[str, Any], as_json: bool) -> None:
    """The sync's report (`SyncReport.to_dict()`, made here or by the server)."""
    shown = [t for t in data["tenants"] if t["status"] != "unchanged"]
    shown += [t for t in data["failed"] if t not in shown]
    counts = ", ".join(f"{k} {v}" for k, v in data["counts"].items() if v) or "no tenants"
    show(data, as_json, table(
        f"Usage sync {data['first_day']} … {data['last_day']}: {counts}; "
        f"{data['calls']} Stripe call(s)", SYNC_COLUMNS,
        [[t["tenant_id"], t["status"], t["sent"], t["corrected"], t["calls"], t["reason"]]
         for t in shown]))
    if data["omitted"] and not as_json:
        note(f"(details of {data['omitted']} more tenant(s) left out; the counts include "
             "them)")
    if data["counts"]["failed"]:
        if not as_json:
            note(f"{data['counts']['failed']} tenant(s) failed; their usage stays for the "
                 "next run (see reason).")
        raise typer.Exit(1)


def reconcile(
    ctx: typer.Context,
    period: Annotated[str | None, typer.Option("--period", help="`current` (each tenant's "
                                               "billing period, the default) or YYYY-MM.")]
    = None,
    tenants: TenantOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Compare the usage store with Stripe's meter summaries; record and alert any drift."""
    cli = cli_context(ctx)
    with reported(as_json):
        with cli.usage_server() as server:
            if server is not None:  # it holds the usage store: it reconciles
                data = server.reconcile(period, tenants)
            else:
                with cli.container(needs_stripe=True) as container:
                    data = container.usage_reconcile.reconcile(period,
                                                               tenants=tenants).to_dict()
        rows = [[t["tenant_id"], datetime.fromisoformat(t["start"]).date(),
                 datetime.fromisoformat(t["end"]), t["ours"], t["stripe"], t["ledger"],
                 t["diff"], t["status"], t["reason"]] for t in data["tenants"]]
        counts = ", ".join(f"{k} {v}" for k, v in data["counts"].items() if v) or "no tenants"
        show(data, as_json, table(f"Usage reconciliation ({data['period']}, up to "
                                  f"{data['through']}): {counts}", RECONCILE_COLUMNS, rows))
        if data["counts"]["drift"] or data["counts"]["failed"]:
            raise typer.Exit(1)


@contextlib.contextmanager
def _progress(total: int, as_json: bool) -> Iterator[Any]:
    if as_json or total < PROGRESS_FROM:
        yield None
        return
    columns = (TextColumn("syncing usage"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err_console(), transient=True) as progress:
        task = progress.add_task("sync", total=total)

        def advance(result: TenantResult) -> None:
            progress.advance(task)

        yield advance
