"""Operator commands: `db upgrade`, `check-config`, `catalog sync`, `api-token`."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from sqlalchemy import text

from meterbill.bootstrap.local import local_secrets
from meterbill.config import Settings, redact_url
from meterbill.domain.errors import MeterbillError

from .context import CliFailure, cli_context, reported
from .output import JsonFlag, console, print_json, show, table

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
catalog_app = typer.Typer(help="The plan catalog in Stripe.", no_args_is_help=True)

DATABASE_URL_FIX = (
    "Fix: start the database or correct DATABASE_URL, e.g. sqlite:///var/meterbill.db or "
    "postgresql+psycopg://USER:PASSWORD@HOST:5432/meterbill."
)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Run the database migrations up to the newest (safe to run again)."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=False) as container:
        container.upgrade_db()
        url = redact_url(container.settings.database_url)
        revision = container.schema_status().current
        if as_json:
            print_json({"database": url, "revision": revision})
        else:
            console().print(f"Database {escape(url)} is at revision {revision} (head).",
                            highlight=False)


@catalog_app.command("sync")
def catalog_sync(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the changes, make none.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create or update the meter, products and prices of plans.toml in Stripe (idempotent)."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=True) as container:
        changes = container.catalog_sync.sync(dry_run=dry_run)
        rows = [change.to_dict() for change in changes]
        title = "Catalog changes (dry run: nothing was changed)" if dry_run else "Catalog sync"
        counts: dict[str, int] = {}
        for change in changes:
            counts[change.action] = counts.get(change.action, 0) + 1
        show(
            {"dry_run": dry_run, "changes": rows, "counts": counts},
            as_json,
            table(title, ("action", "kind", "lookup_key", "detail", "stripe_id"),
                  [(r["action"], r["kind"], r["lookup_key"], r["detail"], r.get("stripe_id"))
                   for r in rows]),
        )
        if not as_json:
            summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
            console().print(summary or "no catalog entries", highlight=False)


def api_token(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Print the API token (development): `export METERBILL_API_TOKEN=$(meterbill api-token)`.

    METERBILL_API_TOKEN when it is set, else the one `meterbill serve` and every command use,
    kept in the secrets file beside the database (made now if there is none yet)."""
    from meterbill.entrypoints.api.auth import resolve_api_token

    cli = cli_context(ctx)
    with reported(as_json):
        settings = cli.settings()
        if settings.environment == "production":
            raise CliFailure("api_token_configured", (
                "In production the API token is the METERBILL_API_TOKEN setting: read it where "
                "you configure meterbill (meterbill keeps no token of its own there)."),
                exit_code=2)
        token, kept = resolve_api_token(settings)
        if as_json:
            source = str(local_secrets(settings).path) if kept else "METERBILL_API_TOKEN"
            print_json({"token": token, "source": source})
        else:
            sys.stdout.write(token + "\n")  # bare, for $(...)


# --- check-config ---------------------------------------------------------------------------


@dataclass
class _Report:
    settings: list[tuple[str, str]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    def ok(self, name: str, detail: str) -> None:
        self.checks.append({"name": name, "ok": True, "detail": detail})

    def error(self, name: str, problem: str, fix: str) -> None:
        self.checks.append({"name": name, "ok": False, "detail": problem})
        self.errors.append({"name": name, "message": problem, "fix": fix})

    def as_dict(self) -> dict[str, Any]:
        return {"ok": not self.errors, "settings": dict(self.settings), "checks": self.checks,
                "warnings": self.warnings, "errors": self.errors}


def check_config(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Print the settings (secrets redacted), check the database and Stripe; exit 1 on errors."""
    cli = cli_context(ctx)
    report = _Report()
    try:
        settings = cli.settings()
    except ValidationError as invalid:
        for problem in invalid.errors():
            name = "_".join(str(part) for part in problem["loc"]).upper()
            if name:
                report.error(name, f"{name}: {problem['msg']}",
                             f"Fix: set {name} to a valid value in the environment or .env.")
            else:  # a rule over several settings: its message names them and the fix
                message = str(problem["msg"]).removeprefix("Value error, ")
                report.error("settings", message, "Fix: as the message says, in the "
                             "environment or .env.")
        _print_report(report, as_json)
        raise typer.Exit(1) from None
    report.settings = settings.describe()
    _check_keys(settings, report)
    try:
        container = cli.container_factory(settings)
    except MeterbillError as error:  # e.g. an unreadable plans file
        report.error("setup", error.message, "Fix: correct the setting the message names.")
    except Exception as error:  # e.g. a DATABASE_URL SQLAlchemy cannot parse
        report.error("database", f"cannot use DATABASE_URL: {_first_line(error)}",
                     DATABASE_URL_FIX)
    else:
        try:
            _check_database(container, report)
            _check_stripe(container, report)
        finally:
            if cli.close_container:
                container.close()
    _print_report(report, as_json)
    if report.errors:
        raise typer.Exit(1)


def _check_keys(settings: Settings, report: _Report) -> None:
    mode, production = settings.mode, settings.environment == "production"
    if mode == "live" and not production:
        report.warnings.append(
            "STRIPE_SECRET_KEY is a live key (sk_live_) but ENVIRONMENT is not production: "
            "real customers would be charged from a development set-up. Use an sk_test_ key "
            "here, or set ENVIRONMENT=production where this really is production."
        )
    if production and mode != "live":
        what = "a test key" if mode == "test" else "no key (sandbox mode)"
        report.warnings.append(
            f"ENVIRONMENT is production but STRIPE_SECRET_KEY is {what}: nobody will be "
            "charged. Set STRIPE_SECRET_KEY to your live key (sk_live_...)."
        )
    if production and settings.meterbill_api_token is None:
        report.error("METERBILL_API_TOKEN", "METERBILL_API_TOKEN is not set; in production the "
                     "API refuses to start without it.",
                     "Fix: set METERBILL_API_TOKEN to a long random value.")
    if mode != "sandbox" and settings.stripe_webhook_secret is None:
        report.warnings.append(
            "STRIPE_WEBHOOK_SECRET is not set: Stripe webhooks cannot be verified. Copy the "
            "endpoint's signing secret (whsec_...) from Stripe into STRIPE_WEBHOOK_SECRET."
        )


def _check_database(container: Any, report: _Report) -> None:
    url = redact_url(container.settings.database_url)
    try:
        with container.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        report.error("database", f"cannot connect to {url}: {_first_line(error)}",
                     DATABASE_URL_FIX)
        return
    status = container.schema_status()
    if status.behind:
        report.error("database", f"{url} is reachable but {status.describe()}.",
                     "Fix: run `meterbill db upgrade` (or set AUTO_MIGRATE=true to let "
                     "`serve` migrate).")
        return
    if status.state == "unknown":  # `serve` starts on it too (rolling deploys)
        report.warnings.append(f"{url}: {status.describe()}.")
    report.ok("database", f"connected to {url}, schema at {status.current}")


def _check_stripe(container: Any, report: _Report) -> None:
    settings = container.settings
    where = ("the in-process sandbox" if container.sandbox is not None
             else settings.stripe_api_base or "api.stripe.com")
    try:
        container.stripe_health()
    except MeterbillError as error:
        request_id = error.details.get("stripe_request_id")
        suffix = f" (Stripe request {request_id})" if request_id else ""
        if error.status in (401, 403) or "API key" in error.message:
            fix = ("Fix: copy the secret key from the Stripe dashboard (Developers > API keys) "
                   "into STRIPE_SECRET_KEY, or unset it for sandbox mode.")
        elif settings.stripe_api_base:
            fix = ("Fix: start the sandbox (`meterbill sandbox`) or correct STRIPE_API_BASE "
                   f"({settings.stripe_api_base}).")
        else:
            fix = "Fix: check the network connection to Stripe and STRIPE_SECRET_KEY."
        report.error("stripe", f"Stripe check against {where} failed: {error.message}{suffix}",
                     fix)
        return
    report.ok("stripe", f"{settings.mode} mode, {where} answered")


def _print_report(report: _Report, as_json: bool) -> None:
    if as_json:
        print_json(report.as_dict())
        return
    out = console()
    if report.settings:
        out.print(table("Settings", ("setting", "value"), report.settings))
    for check in report.checks:
        mark = "[green]ok[/]" if check["ok"] else "[red]FAILED[/]"
        out.print(f"{mark}  {check['name']}: {escape(check['detail'])}", highlight=False)
    for warning in report.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    for error in report.errors:
        out.print(f"[red]error:[/] {escape(error['message'])}\n  {escape(error['fix'])}",
                  highlight=False)
    verdict = (f"[red]{len(report.errors)} error(s)[/]" if report.errors
               else "[green]configuration OK[/]")
    out.print(verdict)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
