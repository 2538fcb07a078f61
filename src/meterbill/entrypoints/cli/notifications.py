"""`meterbill notifications ...`: the outbox of emails and admin alerts.

`list` shows what was sent, held (no SMTP_URL, or sandbox mode) or failed; `show` prints one
email as it was (or will be) sent; `send` delivers what is pending now; `retry` makes a failed
or held one pending again (after fixing SMTP, say).
"""

from __future__ import annotations

from typing import Annotated

import typer

from meterbill.adapters.db.notifications import STATUSES
from meterbill.bootstrap import Container
from meterbill.services.notifications.outbox import NotificationService

from .context import CliFailure, cli_context, reported
from .output import JsonFlag, key_values, note, print_json, show, table

notifications_app = typer.Typer(help="Notification outbox: list, show, send, retry.",
                                no_args_is_help=True)

COLUMNS = ("id", "created_at", "kind", "tenant_id", "channel", "recipient", "status",
           "attempts", "subject", "last_error")


def _service(container: Container) -> NotificationService:
    try:
        return container.notifications
    except ValueError as error:  # SMTP_URL or EMAIL_FROM that cannot be used
        raise CliFailure("invalid_notification_settings", str(error), exit_code=2) from None


@notifications_app.command("list")
def notifications_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(
        help=f"Only this status: {', '.join(STATUSES)}.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind (dunning_reminder, ...).")]
    = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """The newest notifications, and how many are in each status."""
    cli = cli_context(ctx)
    with reported(as_json):
        if status is not None and status not in STATUSES:
            raise CliFailure("invalid_status", f"--status {status!r}: use one of "
                             f"{', '.join(STATUSES)}.", exit_code=2)
        with cli.container(needs_stripe=False) as container:
            service = _service(container)
            rows = [row.as_dict() for row in service.list(status=status, tenant_id=tenant,
                                                          kind=kind, limit=limit)]
            counts = service.counts()
            delivery = service.delivery
        summary = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        show({"data": rows, "counts": counts, "delivery": delivery}, as_json,
             table(f"Notifications ({summary or 'none'})", COLUMNS,
                   [[row[c] for c in COLUMNS] for row in rows]))
        if not as_json and delivery == "held":
            note("SMTP_URL is not set: emails are kept here (held), not sent.")


@notifications_app.command("show")
def notifications_show(
    ctx: typer.Context,
    notification_id: Annotated[int, typer.Argument(metavar="ID")],
    html: Annotated[bool, typer.Option("--html", help="Print the HTML body instead.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """One notification: its row, then the body as it was (or will be) sent."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=False) as container:
        view = _service(container).get(notification_id)
        data = view.as_dict()
        if as_json:
            print_json(data)
            return
        summary = {k: v for k, v in data.items() if k not in ("body_text", "body_html",
                                                              "facts")}
        show(data, False, key_values(f"Notification {view.id}", summary))
        body = view.body_html if html else view.body_text
        note(body if body else "(no body: nothing was rendered for this notice)")


@notifications_app.command("send")
def notifications_send(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Deliver every pending notification that is due, now."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=False) as container:
        service = _service(container)
        report = service.send_due()
        data = {**report.as_dict(), "delivery": service.delivery}
        if as_json:
            print_json(data)
            return
        note(f"sent {report.sent}, retrying later {report.retrying}, failed {report.failed}")
        for error in report.errors:
            note(f"  {error}")
        if service.delivery == "held":
            note("SMTP_URL is not set: emails stay held in the outbox.")


@notifications_app.command("retry")
def notifications_retry(
    ctx: typer.Context,
    notification_id: Annotated[int, typer.Argument(metavar="ID")],
    as_json: JsonFlag = False,
) -> None:
    """Make a failed or held notification pending again, then send what is due."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=False) as container:
        service = _service(container)
        view = service.get(notification_id)
        if not service.retry(notification_id):
            raise CliFailure("not_retryable", f"Notification {notification_id} is "
                             f"{view.status}: only failed or held ones with a recipient and "
                             "a body can be retried.")
        report = service.send_due()
        data = {"id": notification_id, **report.as_dict()}
        if as_json:
            print_json(data)
        else:
            note(f"notification {notification_id} is pending again; sent {report.sent}, "
                 f"retrying later {report.retrying}, failed {report.failed}")
