"""`meterbill webhooks ...`: look into the inbox, replay events, catch up from Stripe.

Replays and catch-up process events in this command (with TASK_RUNNER=celery they go to the
workers instead), so the output shows what happened.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import typer

from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import WebhookComponents, build_webhooks, webhook_options
from meterbill.domain.clock import utcnow

from .context import CliFailure, cli_context, reported
from .output import JsonFlag, key_values, note, print_json, show, table

webhooks_app = typer.Typer(help="Stripe webhook inbox: list, show, replay, catch up.",
                           no_args_is_help=True)

COLUMNS = ("id", "event_id", "type", "status", "attempts", "received_at", "last_error")
_RELATIVE = re.compile(r"^(\d+)([dh])$")


@contextlib.contextmanager
def _components(container: Container) -> Iterator[WebhookComponents]:
    """Webhook parts for one command; events run here unless TASK_RUNNER=celery."""
    from meterbill.adapters.tasks.inline import SyncTaskRunner

    options = webhook_options(container.settings)
    if options.task_runner == "celery":
        components = build_webhooks(container, options=options)
    else:
        holder: dict[str, WebhookComponents] = {}
        runner = SyncTaskRunner(lambda row_id: holder["c"].processor.process(row_id))
        components = holder["c"] = build_webhooks(container, options=options, runner=runner)
    try:
        yield components
    finally:
        components.close()


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`2026-11-01`, `2026-11-01T12:00:00+00:00`, or relative: `3d`, `12h`."""
    now = now or utcnow()
    match = _RELATIVE.match(text.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliFailure("invalid_since", f"--since {text!r}: give a date (2026-11-01), a time "
                         "(2026-11-01T12:00:00Z) or a span back from now (3d, 12h).",
                         exit_code=2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@webhooks_app.command("list")
def webhooks_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only this status (failed, dead, ...).")]
    = None,
    event_type: Annotated[str | None, typer.Option("--type", help="Only this event type.")]
    = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """The newest inbox rows, and how many rows are in each status."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=False) as container:
        with _components(container) as components:
            admin = components.admin
            rows = [r.to_dict() for r in admin.list(status=status, type=event_type,
                                                    limit=limit)]
            counts = admin.counts()
        summary = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        show({"data": rows, "counts": counts}, as_json,
             table(f"Webhook events ({summary or 'none'})", COLUMNS,
                   [[row[c] for c in COLUMNS] for row in rows]))


@webhooks_app.command("show")
def webhooks_show(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(metavar="ID", help="Inbox id or Stripe event id.")],
    as_json: JsonFlag = False,
) -> None:
    """One event: its row, its payload and the last error's traceback."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=False) as container:
        with _components(container) as components:
            row, payload, trace = components.admin.show(key)
        data: dict[str, Any] = row.to_dict()
        if as_json:
            print_json({**data, "payload": payload, "traceback": trace})
            return
        show(data, False, key_values(f"Webhook event {row.event_id}", data))
        note(payload)
        if trace:
            note(trace)


@webhooks_app.command("replay")
def webhooks_replay(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(metavar="[ID]",
                                              help="Inbox id or Stripe event id.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Every failed, dead and parked "
                                         "event.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Process a stored event again (or all that failed), e.g. after fixing the cause."""
    cli = cli_context(ctx)
    with reported(as_json):
        if (key is None) == (not failed):
            raise CliFailure("usage", "Give an event ID or --failed (not both).", exit_code=2)
        with cli.container(needs_stripe=True) as container:
            with _components(container) as components:
                admin = components.admin
                ids = [admin.replay(key).id] if key is not None else admin.replay_failed()
                rows = [r.to_dict() for r in admin.list(limit=10_000) if r.id in set(ids)]
            show({"data": rows, "count": len(rows)}, as_json,
                 table(f"Replayed ({len(rows)})", COLUMNS,
                       [[row[c] for c in COLUMNS] for row in rows]))


@webhooks_app.command("catch-up")
def webhooks_catch_up(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="From when: 2026-11-01, an ISO time, or 3d / 12h. "
                                       "Stripe keeps events for 30 days.")],
    as_json: JsonFlag = False,
) -> None:
    """Store (and process) the events Stripe has that the inbox lacks."""
    cli = cli_context(ctx)
    with reported(as_json):
        start = parse_since(since)
        with cli.container(needs_stripe=True) as container:
            with _components(container) as components:
                result = components.admin.catch_up(start)
        data = {"since": start.isoformat(), "listed": result.listed,
                "inserted": result.inserted}
        if as_json:
            print_json(data)
        else:
            note(f"Stripe listed {result.listed} event(s) since {start.isoformat()}; "
                 f"{len(result.inserted)} were missing and are now stored and processed.")
