"""`meterbill jobs list|run NAME`: the schedule table (bootstrap/jobs.py) and its runs.

While `meterbill serve` runs on this database, both ask it (`/admin/jobs`): it holds the usage
store and the sandbox the jobs need. Without a server the job runs in this process.
`jobs run` exits 1 when the run failed, so cron and scripts notice.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .context import CliFailure, cli_context, reported
from .output import JsonFlag, show, table

jobs_app = typer.Typer(help="Periodic jobs: what runs when, and their runs.",
                       no_args_is_help=True)

COLUMNS = ("job", "schedule", "leader", "last run", "outcome", "counts", "error")


@jobs_app.command("list")
def jobs_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every periodic job, when it runs, and its newest run."""
    cli = cli_context(ctx)
    with reported(as_json):
        with cli.running_server(announce=None if as_json else "it runs the jobs") as server:
            if server is not None:
                data = server.jobs()["data"]
            else:
                with cli.container(needs_stripe=False) as container:
                    data = [status.to_dict() for status in container.jobs.status()]
        show({"data": data}, as_json, table("Periodic jobs", COLUMNS, [_row(s) for s in data]))


@jobs_app.command("run")
def jobs_run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The job's name, as `meterbill jobs list` shows "
                                             "it.")],
    as_json: JsonFlag = False,
) -> None:
    """Run one periodic job now, recorded like a scheduled run."""
    cli = cli_context(ctx)
    with reported(as_json):
        with cli.running_server(announce=None if as_json else "it runs the jobs") as server:
            if server is not None:
                run = server.run_job(name)
            else:
                with cli.container(needs_stripe=True) as container:
                    run = container.jobs.run(name).to_dict()
        show(run, as_json, table(f"Job {name}", ("outcome", "counts", "error"),
                                 [(run["outcome"], _counts(run["counts"]), run["error"])]))
        if run["outcome"] == "failed":
            raise CliFailure("job_failed", f"Job {name} failed: {run['error']}")


def _row(status: dict[str, Any]) -> tuple[Any, ...]:
    last = status.get("last_run") or {}
    return (status["name"], status["schedule"], "yes" if status["leader"] else "no",
            last.get("started_at") or "never", last.get("outcome") or "",
            _counts(last.get("counts") or {}), last.get("error") or "")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items() if value) or "-"
