"""The `meterbill` command line (Typer). `main()` is the console script.

Every command prints tables for people and, with `--json`, one JSON document for scripts.
"""

from __future__ import annotations

import typer

from meterbill.entrypoints import worker

from . import (
    admin,
    billing,
    console,
    dunning,
    invoices,
    jobs,
    notifications,
    operations,
    sandbox,
    server,
    usage,
    usage_sync,
    webhooks,
)
from .context import CliContext

app = typer.Typer(
    name="meterbill",
    help="Billing automation for usage-based SaaS on Stripe.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(server.serve)
# `meterbill sandbox` alone runs the sandbox on a port; `meterbill sandbox advance` moves time.
sandbox.sandbox_app.callback(invoke_without_command=True)(server.sandbox)
app.add_typer(sandbox.sandbox_app, name="sandbox")
app.command("demo")(sandbox.demo)
app.command("check-config")(admin.check_config)
app.command("reconcile")(operations.reconcile)
app.command("status")(operations.status)
app.command("api-token")(admin.api_token)
app.add_typer(admin.db_app, name="db")
app.add_typer(admin.catalog_app, name="catalog")
app.add_typer(billing.tenants_app, name="tenants")
app.add_typer(billing.subscriptions_app, name="subscriptions")
app.add_typer(webhooks.webhooks_app, name="webhooks")
app.add_typer(notifications.notifications_app, name="notifications")
usage.usage_app.command("sync")(usage_sync.sync)
usage.usage_app.command("reconcile")(usage_sync.reconcile)
app.add_typer(usage.usage_app, name="usage")
app.add_typer(dunning.dunning_app, name="dunning")
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(invoices.invoices_app, name="invoices")
app.add_typer(console.console_app, name="console")
app.command("worker")(worker.worker)


def main() -> None:
    app(obj=CliContext())


__all__ = ["CliContext", "app", "main"]
