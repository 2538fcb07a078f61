"""`meterbill reconcile [--dry-run]`: compare every subscription with Stripe's, correct ours,
record and alert each drift (services/reconcile/subscriptions.py); `--drifts` lists the
recorded ones, newest first; exits 1 when a drift could not be fixed, so cron notices.
`meterbill status`: the SLOs now; exits 1 on a breach."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .context import CliFailure, cli_context, reported
from .output import JsonFlag, err_console, note, show, table

COLUMNS = ("found", "kind", "tenant", "subscription", "meterbill had", "Stripe has", "fix")


def reconcile(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report: change and record "
                                                           "nothing.")] = False,
    drifts: Annotated[bool, typer.Option("--drifts", help="List the recorded drifts instead "
                                                         "(newest first).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Prove that meterbill's subscriptions agree with Stripe's; correct ours where not."""
    cli = cli_context(ctx)
    with reported(as_json):
        with cli.container(needs_stripe=not drifts) as container:
            service = container.subscription_reconcile
            if drifts:
                rows = [d.to_dict() for d in service.drifts(limit=1000)]
                show({"data": rows}, as_json, table("Recorded drifts", COLUMNS,
                                                    [_row(r) for r in rows]))
                return
            with Progress(SpinnerColumn(), TextColumn("{task.description}"),
                          TimeElapsedColumn(), console=err_console(),
                          disable=as_json, transient=True) as bar:
                task = bar.add_task("Listing Stripe's subscriptions", total=None)
                report = service.run(dry_run=dry_run, progress=lambda n: bar.update(
                    task, description=f"Compared {n} subscription(s)"))
        data = report.to_dict()
        title = (f"{'Dry run: ' if dry_run else ''}{report.subscriptions} subscription(s) "
                 f"in {report.stripe_calls} Stripe call(s), {len(report.drifts)} drift(s)")
        show(data, as_json, table(title, COLUMNS, [_row(d) for d in data["drifts"]]))
        unfixed = [d for d in report.drifts if not d.fixed]
        if unfixed and not dry_run:
            raise CliFailure("drift_unfixed", f"{len(unfixed)} drift(s) need the operator; "
                             "`meterbill reconcile --drifts` lists them")


def _row(d: dict[str, object]) -> tuple[object, ...]:
    return (d["found_at"], d["kind"], d["tenant_id"] or "", d["subscription_id"] or "",
            d["local"], d["stripe"], d["fix"])


SLO_COLUMNS = ("objective", "value", "threshold", "window", "state", "since")


def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The SLOs now: value, threshold, ok or breach and since when. Exits 1 on a breach."""
    cli = cli_context(ctx)
    with reported(as_json):
        with cli.container(needs_stripe=False) as container:
            data = [s.to_dict() for s in container.slo_status.status()]
        rows = [(s["name"], s["value"] if s["value"] is not None else "no data",
                 s["objective"], s["window"], "ok" if s["ok"] else "BREACH",
                 s["since"] or "") for s in data]
        show({"ok": all(s["ok"] for s in data), "data": data}, as_json,
             table("Service-level objectives", SLO_COLUMNS, rows))
    breached = [s["name"] for s in data if not s["ok"]]
    if breached:  # the table (or JSON) says which; the exit code tells cron
        note(f"In breach: {', '.join(breached)} (docs/operations.md says what to do)", as_json)
        raise typer.Exit(1)
