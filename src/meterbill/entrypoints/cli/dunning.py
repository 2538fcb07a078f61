"""`meterbill dunning ...` and `meterbill tenants timeline|entitlement`: dunning for operators.

- `dunning policy`: the policy in force (DUNNING_POLICY_FILE or the packaged one), checked.
- `dunning process --tenant T --failures N --amount 99.00`: the seeds' manual trigger, the
  amount in the currency's major unit as POST /dunning/process takes it (or `--amount-cents`).
- `tenants timeline T`: every change of the tenant's dunning state, with its cause.
- `tenants entitlement T`: what the SaaS is told about the tenant's access.
"""

from __future__ import annotations

from typing import Annotated

import typer

from meterbill.domain.dunning import load_policy
from meterbill.domain.errors import InvalidInput
from meterbill.domain.money import MAX_MINOR_AMOUNT, parse_amount, to_minor_units

from .billing import TenantArg, tenants_app
from .context import cli_context, reported
from .output import JsonFlag, key_values, show, table

dunning_app = typer.Typer(help="Dunning: the policy, and the manual step for operators.",
                          no_args_is_help=True)

TIMELINE_COLUMNS = ("at", "from_state", "to_state", "cause", "invoice_id", "detail")


@dunning_app.command("policy")
def dunning_policy(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The dunning policy in force, step by step (DUNNING_POLICY_FILE or the packaged one)."""
    cli = cli_context(ctx)
    with reported(as_json):
        policy = load_policy(cli.settings().dunning_policy_file)
        steps = [{"failures": s.failures, "name": s.name, "notice": s.notice,
                  "access": s.effects.access,
                  "rate_limit_multiplier": s.effects.rate_limit_multiplier}
                 for s in policy.steps]
        data = {
            "source": policy.source, "steps": steps,
            "retry_days": list(policy.retry_days),
            "decline_codes": {"jump_to": policy.decline_jump_to,
                              "codes": sorted(policy.hard_decline_codes)},
            "recovery": {"notice": policy.recovery_notice,
                         "notify_on_void": policy.notify_on_void},
            "cancellation": {"notice": policy.cancellation_notice},
            "trial": {"grace_days": policy.trial.grace_days,
                      "grace_access": policy.trial.grace.access,
                      "suspended_notice": policy.trial.suspended_notice,
                      "reminder_notice": policy.trial.reminder_notice},
        }
        columns = ("failures", "name", "notice", "access", "rate_limit_multiplier")
        show(data, as_json,
             table(f"Dunning steps ({policy.source})", columns,
                   [[s[c] for c in columns] for s in steps]),
             key_values(None, {"jump on decline codes to": policy.decline_jump_to,
                               "decline codes": sorted(policy.hard_decline_codes),
                               "trial grace days": policy.trial.grace_days,
                               "retry days": list(policy.retry_days)}))


@dunning_app.command("process")
def dunning_process(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id.")],
    failures: Annotated[int, typer.Option("--failures", min=0,
                                          help="Failed payment attempts; 0 restores.")],
    amount: Annotated[str | None, typer.Option(
        "--amount", help="Unpaid amount in the currency's major unit (99.00 = $99.00).")] = None,
    amount_cents: Annotated[int | None, typer.Option(
        "--amount-cents", min=0, max=MAX_MINOR_AMOUNT,
        help="The same in the minor unit (9900 = $99.00), instead of --amount.")] = None,
    currency: Annotated[str, typer.Option(help="Currency of the amount.")] = "usd",
    invoice_id: Annotated[str | None, typer.Option(
        "--invoice-id", help="Names the notices' once-only key.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Apply the policy's step for a failure count (the seeds' POST /dunning/process)."""
    cli = cli_context(ctx)
    with reported(as_json):
        cents = _amount_in_cents(amount, amount_cents, currency)
        with cli.container(needs_stripe=False) as container:
            result = container.dunning.process_manual(tenant, failures, cents, currency,
                                                      invoice_id)
            data = result.to_dict()
            show(data, as_json, key_values(f"Dunning of {tenant}", data))


def _amount_in_cents(amount: str | None, amount_cents: int | None, currency: str) -> int:
    """Exactly one of the two options, as integer minor units (the text parsed as Decimal)."""
    if amount is not None and amount_cents is not None:
        raise InvalidInput("Give --amount (e.g. 99.00) or --amount-cents (e.g. 9900), not both.",
                           field="amount")
    if amount_cents is not None:
        return amount_cents
    if amount is None:
        raise InvalidInput("--amount is required: the unpaid amount in the currency's major "
                           "unit (99.00 = $99.00), or --amount-cents (9900).", field="amount")
    try:
        return to_minor_units(parse_amount(amount, what="--amount"), currency, what="--amount")
    except ValueError as error:
        raise InvalidInput(f"{error}; give --amount-cents for an amount in the minor unit.",
                           field="amount") from None


@tenants_app.command("timeline")
def tenants_timeline(
    ctx: typer.Context, tenant_id: TenantArg,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="The newest N entries.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Every change of a tenant's dunning state, oldest first, with its cause."""
    cli = cli_context(ctx)
    with reported(as_json), cli.container(needs_stripe=False) as container:
        rows = [entry.to_dict() for entry in container.dunning.timeline(tenant_id, limit)]
        show({"tenant_id": tenant_id, "data": rows, "count": len(rows)}, as_json,
             table(f"Timeline of {tenant_id} ({len(rows)})", TIMELINE_COLUMNS,
                   [[row[c] for c in TIMELINE_COLUMNS] for row in rows]))


@tenants_app.command("entitlement")
def tenants_entitlement(ctx: typer.Context, tenant_id: TenantArg,
                        as_json: JsonFlag = False) -> None:
    """What the SaaS is told: access, rate-limit multiplier, reason, plan and usage."""
    cli = cli_context(ctx)
    with reported(as_json):
        with cli.usage_server() as server:
            if server is not None:  # it holds the usage store the answer counts usage from
                data = server.entitlement(tenant_id)
            else:
                with cli.container(needs_stripe=False) as container:
                    data = container.entitlement.get(tenant_id).to_dict()
        show(data, as_json, key_values(f"Entitlement of {tenant_id}", data))
