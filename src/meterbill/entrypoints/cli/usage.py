"""`meterbill usage ...`: ingest usage files, sync usage to Stripe's meters, reconcile.

This module holds the group and `usage ingest`; the sync and reconciliation commands are added
to `usage_app` by the modules that implement them.

`usage ingest FILE` streams a CSV (header row with the field names) or JSON-lines file into the
usage store in chunks of 10,000 events, with a progress bar in bytes on stderr, then prints a
summary and the first problems by line and field. Exit codes: 0 every event accepted (repeats
included), 1 some events rejected (the others are stored) or the file is unusable, 2 set-up
(no such file, the usage store cannot be opened).

While `meterbill serve` holds the DuckDB usage store, the batches go to it (`POST /usage/events`)
and its answers are mapped back to the file's lines, so the report reads the same.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from meterbill.domain.errors import ConfigurationError
from meterbill.services.usage.ingest import (
    BatchSender,
    FileFormat,
    IngestProgress,
    IngestResult,
    ingest_file_with,
)

from .context import CliFailure, cli_context, reported
from .output import JsonFlag, console, key_values, note, print_json, table

usage_app = typer.Typer(help="Usage events: ingest files, sync to Stripe, reconcile.",
                        no_args_is_help=True)

FormatOption = Annotated[Literal["csv", "jsonl"] | None, typer.Option(
    "--format", help="csv or jsonl; by default from the suffix (.csv, .jsonl, .ndjson, .json), "
                     "else from the first bytes.", case_sensitive=False)]


@usage_app.command("ingest")
def usage_ingest(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(
        help="CSV with a header row (event_id, tenant_id, timestamp; metric and quantity "
             "optional) or JSON lines, one event object per line.")],
    file_format: FormatOption = None,
    show_errors: Annotated[int, typer.Option(
        "--show-errors", min=0, help="How many problems to list (all kept ones with --json, "
                                     "up to 1,000).")] = 20,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Progress bar on stderr; default: when stderr is a "
                                         "terminal.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Load a CSV or JSON-lines file of usage events into the usage store (backfills)."""
    cli = cli_context(ctx)
    with reported(as_json):
        if not file.is_file():
            raise CliFailure("file_not_found", f"No such file: {file}. Fix: give the path of a "
                             "CSV or JSON-lines file.", exit_code=2)
        show_bar = sys.stderr.isatty() if progress is None else progress
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(cli.usage_server())
            if server is not None:  # it holds the store: send it the file in batches
                send: BatchSender = server.ingest_batch
            else:
                container = stack.enter_context(cli.container(needs_stripe=False))
                try:
                    service = container.usage_ingest
                except ConfigurationError as error:
                    raise CliFailure("usage_store_unavailable", error.message,
                                     exit_code=2) from None
                send = service.batch_sender()
            started = time.perf_counter()
            result = _run(send, file, file_format, show_bar)
            seconds = time.perf_counter() - started
        _report(file, file_format, result, seconds, show_errors, as_json)
    if result.rejected:
        raise typer.Exit(1)


def _run(send: BatchSender, file: Path, file_format: FileFormat | None,
         show_bar: bool) -> IngestResult:
    if not show_bar:
        return ingest_file_with(send, file, file_format=file_format)
    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[events]:,} events, {task.fields[rejected]:,} rejected"),
        console=Console(file=sys.stderr),
    )
    with bar:
        task = bar.add_task(escape(file.name), total=file.stat().st_size, events=0, rejected=0)

        def update(step: IngestProgress) -> None:
            bar.update(task, completed=step.bytes_read, total=step.bytes_total,
                       events=step.records, rejected=step.rejected)

        return ingest_file_with(send, file, update, file_format=file_format)


def _report(file: Path, file_format: str | None, result: IngestResult, seconds: float,
            show_errors: int, as_json: bool) -> None:
    read = result.accepted + result.rejected
    summary: dict[str, Any] = {
        "file": str(file),
        "format": file_format or "auto",
        "events_read": read,
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "stored": result.stored,
        "rejected": result.rejected,
        "seconds": round(seconds, 3),
        "events_per_second": round(read / seconds) if seconds > 0 else None,
    }
    if as_json:
        print_json({**summary, "errors": [e.to_dict() for e in result.errors]})
        return
    out = console()
    out.print(key_values(f"Ingested {file.name}", summary))
    if result.errors and show_errors:
        shown = result.errors[:show_errors]
        out.print(table(f"Problems (first {len(shown)} of {len(result.errors):,} listed)",
                        ("line", "index", "field", "message"),
                        [(e.line, e.index, e.field, e.message) for e in shown]))
    if result.rejected:
        note(f"{result.rejected:,} events were rejected (fix them and ingest those lines "
             "again; events already stored count once).")
