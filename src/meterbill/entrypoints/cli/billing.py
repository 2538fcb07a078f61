"""`meterbill tenants ...` and `meterbill subscriptions ...`: the API's operations for people."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from meterbill.domain.errors import NotFound
from meterbill.services.billing.subscriptions import DEFAULT_DAYS_UNTIL_DUE

from .context import CliFailure, cli_context, reported
from .output import JsonFlag, key_values, note, show, table

tenants_app = typer.Typer(help="Tenants and their Stripe customers.", no_args_is_help=True)
subscriptions_app = typer.Typer(help="Subscriptions: create, cancel, resume, change plan.",
                                no_args_is_help=True)

TenantArg = Annotated[str, typer.Argument(help="Your tenant id, e.g. test_tenant_001.")]
SubscriptionArg = Annotated[str, typer.Argument(help="Stripe subscription id (sub_...).")]

TENANT_COLUMNS = ("tenant_id", "email", "stripe_customer_id", "current_plan", "billing_status",
                  "api_access_enabled")


@tenants_app.command("create")
def tenants_create(
    ctx: typer.Context,
    tenant_id: TenantArg,
    email: Annotated[str, typer.Option(help="Billing e-mail of the tenant.")],
    name: Annotated[str | None, typer.Option(help="Customer name shown on invoices.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create the tenant's Stripe customer (or find the one it already has)."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=True) as container:
        tenant = container.customers.ensure_customer(tenant_id, email, name)
        data = tenant.to_dict()
        show(data, as_json, key_values(f"Tenant {tenant_id}", data))


@tenants_app.command("show")
def tenants_show(ctx: typer.Context, tenant_id: TenantArg, as_json: JsonFlag = False) -> None:
    """A tenant's billing summary: plan, status, period, trial, payment method, access."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=True) as container:
        data = container.tenants.get(tenant_id).to_dict()
        show(data, as_json, key_values(f"Tenant {tenant_id}", data))


@tenants_app.command("list")
def tenants_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Every tenant in the database."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=False) as container:
        rows = [tenant.to_dict() for tenant in container.tenants.list()]
        show({"data": rows, "count": len(rows)}, as_json,
             table(f"Tenants ({len(rows)})", TENANT_COLUMNS,
                   [[row[c] for c in TENANT_COLUMNS] for row in rows]))


@tenants_app.command("usage")
def tenants_usage(
    ctx: typer.Context,
    tenant_id: TenantArg,
    period: Annotated[str, typer.Option(
        help="current (the subscription's period) or a calendar month, YYYY-MM.")] = "current",
    metric: Annotated[str, typer.Option(help="queries or tokens.")] = "queries",
    as_json: JsonFlag = False,
) -> None:
    """A tenant's usage in a period: used, included, overage, projection, per day."""
    from meterbill.services.usage.view import UsageViewService

    cli = cli_context(ctx)
    with reported(as_json):
        with cli.usage_server() as server:
            if server is not None:  # it holds the usage store
                data = server.tenant_usage(tenant_id, period, metric)
            else:
                with cli.container(needs_stripe=False) as container:
                    view = UsageViewService(container.db, container.usage_store,
                                            container.catalog)
                    data = view.view(tenant_id, period, metric).to_dict()
        summary = {k: v for k, v in data.items() if k not in ("daily", "projection", "notes")}
        show(data, as_json, key_values(f"Usage of {tenant_id}", summary),
             table("Per day", ("date", "used"), [(d["date"], f"{d['used']:,}")
                                                 for d in data["daily"]]))
        if not as_json:
            for line in (data["sentence"], *data["notes"]):
                note(line)


@subscriptions_app.command("create")
def subscriptions_create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id, e.g. test_tenant_001.")],
    plan: Annotated[str, typer.Option("--plan", help="starter, pro or enterprise.")],
    email: Annotated[str | None, typer.Option(
        help="Creates the tenant's Stripe customer first when it has none.")] = None,
    name: Annotated[str | None, typer.Option(help="Customer name (with --email).")] = None,
    trial_days: Annotated[int | None, typer.Option(
        "--trial-days", min=0, max=730, help="Trial length; default DEFAULT_TRIAL_DAYS.")] = None,
    payment_method: Annotated[str | None, typer.Option(
        "--payment-method", help="e.g. pm_card_visa in test mode.")] = None,
    send_invoice: Annotated[bool, typer.Option(
        "--send-invoice", help="Email invoices with payment terms instead of charging a card "
                               "(no payment method needed).")] = False,
    days_until_due: Annotated[int | None, typer.Option(
        "--days-until-due", min=0, max=365,
        help="Payment terms with --send-invoice; default 30.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Subscribe a tenant to a plan (the seeds' create_test_subscription.py)."""
    if days_until_due is not None and not send_invoice:
        raise typer.BadParameter("--days-until-due needs --send-invoice",
                                 param_hint="--days-until-due")
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=True) as container:
        if email is not None:
            customer = container.customers.ensure_customer(tenant, email, name).stripe_customer_id
        else:
            customer = _customer_of(container, tenant)
        if customer is None:
            raise CliFailure("no_customer", f"Tenant {tenant} has no Stripe customer yet. "
                             "Fix: pass --email to create one.")
        view = container.subscriptions.create(
            tenant_id=tenant, customer_id=customer, plan_type=plan, trial_days=trial_days,
            payment_method_id=payment_method,
            days_until_due=(days_until_due if days_until_due is not None
                            else DEFAULT_DAYS_UNTIL_DUE) if send_invoice else None,
        )
        data = view.to_dict()
        show(data, as_json, key_values(f"Subscription {view.id}", data))


@subscriptions_app.command("list")
def subscriptions_list(
    ctx: typer.Context,
    status: Annotated[str, typer.Option(
        "--status", help="incomplete, past_due or trialing_without_payment_method.")],
    as_json: JsonFlag = False,
) -> None:
    """Subscriptions to watch: a first payment awaiting authentication, a failed renewal, or
    a trial that will end without a payment method."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container() as container:
        data = [v.to_dict() for v in container.subscriptions.needing_attention(status)]
        show(data, as_json, table(f"Subscriptions: {status}",
                                  ["id", "tenant", "plan", "status", "trial end",
                                   "latest invoice"],
                                  [(d["id"], d["tenant_id"], d["plan_type"], d["status"],
                                    d["trial_end"] or "", d["latest_invoice"] or "")
                                   for d in data]))


@subscriptions_app.command("cancel")
def subscriptions_cancel(
    ctx: typer.Context,
    subscription_id: SubscriptionArg,
    now: Annotated[bool, typer.Option(
        "--now", help="Cancel at once instead of at the end of the paid period.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Cancel a subscription at the end of its period (or --now)."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=True) as container:
        data = container.subscriptions.cancel(subscription_id, at_period_end=not now).to_dict()
        show(data, as_json, key_values(f"Subscription {subscription_id}", data))


@subscriptions_app.command("resume")
def subscriptions_resume(
    ctx: typer.Context, subscription_id: SubscriptionArg, as_json: JsonFlag = False
) -> None:
    """Undo a cancellation that waits for the end of the period."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=True) as container:
        data = container.subscriptions.resume(subscription_id).to_dict()
        show(data, as_json, key_values(f"Subscription {subscription_id}", data))


@subscriptions_app.command("change-plan")
def subscriptions_change_plan(
    ctx: typer.Context,
    subscription_id: SubscriptionArg,
    plan: Annotated[str, typer.Option("--plan", help="The new plan.")],
    as_json: JsonFlag = False,
) -> None:
    """Upgrade now (prorated) or downgrade at period end."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=True) as container:
        change = container.subscriptions.change_plan(subscription_id, plan)
        data = change.to_dict()
        summary = {k: v for k, v in data.items() if k != "subscription"}
        show(data, as_json, key_values(f"Plan change of {subscription_id}", summary),
             key_values(None, data["subscription"]))


@subscriptions_app.command("cancel-downgrade")
def subscriptions_cancel_downgrade(
    ctx: typer.Context, subscription_id: SubscriptionArg, as_json: JsonFlag = False
) -> None:
    """Keep the current plan: drop a downgrade waiting for the period end."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=True) as container:
        data = container.subscriptions.cancel_pending_change(subscription_id).to_dict()
        show(data, as_json, key_values(f"Subscription {subscription_id}", data["subscription"]))


def _customer_of(container: Any, tenant_id: str) -> str | None:
    try:
        summary = container.tenants.get(tenant_id)
    except NotFound:
        raise CliFailure("tenant_not_found", f"No tenant {tenant_id}. Fix: pass --email to "
                         "create its Stripe customer with this command.") from None
    customer: str | None = summary.tenant.stripe_customer_id
    return customer
