"""The dunning service on SQLite and PostgreSQL: the manual step, notices once per (tenant,
step, invoice), decline codes read from Stripe, voids, uncollectible invoices, cancellation
at the period end, and the policy file in the container."""

from __future__ import annotations

from pathlib import Path

import pytest
import stripe

from meterbill.adapters.stripe_events import StripeEvents
from meterbill.bootstrap import Container
from meterbill.bootstrap.webhooks import build_webhooks
from meterbill.domain.errors import ConfigurationError, InvalidInput, NotFound
from stripe_sandbox import Sandbox

from ..conftest import make_container, make_settings
from ..webhooks.conftest import ManualRunner, make_options
from .conftest import (
    DAY,
    EMAIL,
    TENANT,
    Month,
    notices,
    start_month,
    tenant_row,
    timeline,
)


@pytest.fixture
def subscribed(container: Container) -> str:
    """A tenant on Pro with a card, in its trial."""
    tenant = container.customers.ensure_customer(TENANT, EMAIL, "Acme Inc.")
    assert tenant.stripe_customer_id is not None
    container.subscriptions.create(TENANT, tenant.stripe_customer_id, "pro",
                                   payment_method_id="pm_card_visa")
    return TENANT


@pytest.mark.parametrize(("count", "state", "access", "multiplier", "status"), [
    (1, "reminder", "full", 1.0, "trialing"),
    (2, "warning", "full", 1.0, "trialing"),
    (3, "final_warning", "reduced", 0.5, "trialing"),
    (4, "suspended", "none", 0.0, "suspended"),
    (6, "suspended", "none", 0.0, "suspended"),
])
def test_the_manual_step_for_each_count(container: Container, subscribed: str, count: int,
                                        state: str, access: str, multiplier: float,
                                        status: str) -> None:
    result = container.dunning.process_manual(TENANT, count, 9900)
    assert (result.to_state, result.access, result.rate_limit_multiplier, result.changed) == (
        state, access, multiplier, True)
    row = tenant_row(container)
    assert (row["billing_status"], row["rate_limit_multiplier"], row["payment_failures"]) == (
        status, multiplier, count)
    [entry] = timeline(container)
    assert (entry.from_state, entry.to_state, entry.cause, entry.event_id) == (
        "good_standing", state, "manual", None)
    [notice] = notices(container)
    assert notice.kind == {"reminder": "dunning_reminder", "warning": "dunning_warning",
                           "final_warning": "dunning_final_warning",
                           "suspended": "dunning_suspended"}[state]
    assert (notice.facts or {})["amount_due"] == 9900
    # The same step again: nothing new.
    again = container.dunning.process_manual(TENANT, count, 9900)
    assert not again.changed and again.notices == ()
    assert len(timeline(container)) == 1 and len(notices(container)) == 1


def test_manual_zero_restores_and_the_step_back_keeps_once_per_invoice(
        container: Container, subscribed: str) -> None:
    dunning = container.dunning
    dunning.process_manual(TENANT, 4, 9900, invoice_id="in_manual_1")
    restored = dunning.process_manual(TENANT, 0, 9900, invoice_id="in_manual_1")
    assert (restored.to_state, restored.access, restored.notices) == (
        "good_standing", "full", ())  # an operator's reset received no money: no receipt
    row = tenant_row(container)
    assert (row["billing_status"], row["api_access_enabled"], row["suspended_at"]) == (
        "trialing", True, None)  # Stripe's status, as the subscription's copy has it
    # The same invoice failing again: the step is entered again (timeline), but its e-mail
    # went out once already for this invoice.
    again = dunning.process_manual(TENANT, 4, 9900, invoice_id="in_manual_1")
    assert again.changed and again.notices == ()
    assert [e.to_state for e in timeline(container)] == ["suspended", "good_standing",
                                                        "suspended"]
    assert len(notices(container, "dunning_suspended")) == 1
    # A different invoice is a different e-mail.
    dunning.process_manual(TENANT, 0, 9900, invoice_id="in_manual_1")
    assert dunning.process_manual(TENANT, 4, 9900, invoice_id="in_manual_2").notices == (
        "dunning_suspended",)


def test_manual_refuses_bad_input_and_unknown_tenants(container: Container,
                                                      subscribed: str) -> None:
    with pytest.raises(InvalidInput, match="failure_count"):
        container.dunning.process_manual(TENANT, -1, 100)
    with pytest.raises(InvalidInput, match="whole cents"):
        container.dunning.process_manual(TENANT, 1, 99.5)  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="Unknown tenant"):
        container.dunning.process_manual("nobody", 1, 100)
    with pytest.raises(NotFound):
        container.dunning.timeline("nobody")
    assert timeline(container) == []


# --- with Stripe's events ----------------------------------------------------------------------


class StolenCard(StripeEvents):
    """Stripe, but the issuer reported the card stolen (no test card attaches and then fails
    that way, so the decline code is the one thing changed)."""

    def decline_code(self, invoice_id: str) -> str | None:
        assert super().decline_code(invoice_id) == "generic_decline"  # what Stripe said
        return "stolen_card"


def test_the_decline_code_comes_from_the_invoices_payment_intent(
        container: Container, hooks: object, stripe_client: stripe.StripeClient,
        sandbox: Sandbox) -> None:
    month = start_month(container, hooks, stripe_client, sandbox)  # type: ignore[arg-type]
    month.advance_to(1)
    events = StripeEvents(container.gateway)
    assert events.decline_code(month.invoice().id) == "generic_decline"
    assert timeline(container)[-1].to_state == "reminder"  # generic: retrying may help


def test_a_stolen_card_jumps_straight_to_the_warning(
        container: Container, stripe_client: stripe.StripeClient, sandbox: Sandbox) -> None:
    runner = ManualRunner()
    hooks = build_webhooks(container, options=make_options(), runner=runner,
                           stripe=StolenCard(container.gateway))
    runner.components = hooks
    try:
        month = start_month(container, hooks, stripe_client, sandbox)
        month.advance_to(1)
    finally:
        hooks.close()
    [entry] = timeline(container)
    assert entry.to_state == "warning" and "stolen_card" in entry.detail
    assert entry.failures == 1
    assert [n.kind for n in notices(container)] == ["dunning_warning"]


def test_a_voided_invoice_restores_without_a_payment_e_mail(
        container: Container, hooks: object, stripe_client: stripe.StripeClient,
        sandbox: Sandbox) -> None:
    month = start_month(container, hooks, stripe_client, sandbox)  # type: ignore[arg-type]
    month.advance_to(7)
    assert tenant_row(container)["soft_suspended"] is True
    stripe_client.v1.invoices.void_invoice(month.invoice().id)
    month.deliver_new()
    row = tenant_row(container)
    assert (row["soft_suspended"], row["rate_limit_multiplier"], row["payment_failures"]) == (
        False, 1.0, 0)
    last = timeline(container)[-1]
    assert (last.from_state, last.to_state, last.step) == ("final_warning", "good_standing",
                                                           "void")
    assert notices(container, "payment_received") == []


def test_uncollectible_keeps_the_step_until_paid_out_of_band(
        container: Container, hooks: object, stripe_client: stripe.StripeClient,
        sandbox: Sandbox) -> None:
    sandbox.config.after_final_failure = "unpaid"
    month: Month = start_month(container, hooks, stripe_client,  # type: ignore[arg-type]
                               sandbox)
    for day in (1, 4, 7, 8):
        month.advance_to(day)
    invoice = month.invoice()
    stripe_client.v1.invoices.mark_uncollectible(invoice.id)
    month.deliver_new()
    assert tenant_row(container)["billing_status"] == "suspended"
    assert timeline(container)[-1].to_state == "suspended"
    # The customer paid by bank transfer; the operator records it in Stripe.
    stripe_client.v1.invoices.pay(invoice.id, params={"paid_out_of_band": True})
    month.deliver_new()
    row = tenant_row(container)
    assert (row["billing_status"], row["api_access_enabled"]) == ("active", True)
    assert timeline(container)[-1].step == "recovery"
    assert len(notices(container, "payment_received")) == 1


def test_cancel_at_period_end_keeps_access_until_stripe_ends_it(
        container: Container, hooks: object, stripe_client: stripe.StripeClient,
        sandbox: Sandbox) -> None:
    month: Month = start_month(container, hooks, stripe_client,  # type: ignore[arg-type]
                               sandbox)
    container.subscriptions.cancel(month.subscription_id, at_period_end=True)
    month.deliver_new()
    row = tenant_row(container)
    assert (row["billing_status"], row["api_access_enabled"]) == ("trialing", True)
    assert notices(container, "subscription_canceled") == []
    month.advance(month.first_failure - 3600 + DAY)  # past the trial's end: the period's
    row = tenant_row(container)
    assert (row["billing_status"], row["api_access_enabled"]) == ("canceled", False)
    [entry] = timeline(container)
    assert (entry.to_state, entry.step) == ("canceled", "cancellation")
    [notice] = notices(container, "subscription_canceled")
    assert notice.tenant_id == TENANT and (notice.facts or {})["email"] == EMAIL


# --- the policy file -------------------------------------------------------------------------


def test_the_container_uses_dunning_policy_file(database_url: str, sandbox: Sandbox,
                                                tmp_path: Path) -> None:
    path = tmp_path / "dunning.toml"
    path.write_text('[[steps]]\nfailures = 1\nname = "cut_off"\nnotice = "dunning_suspended"\n'
                    'access = "none"\n')
    container = make_container(make_settings(database_url, dunning_policy_file=path), sandbox)
    try:
        assert container.dunning.policy.source == str(path)
        tenant = container.customers.ensure_customer(TENANT, EMAIL, None)
        assert tenant.stripe_customer_id is not None
        container.subscriptions.create(TENANT, tenant.stripe_customer_id, "starter",
                                       payment_method_id="pm_card_visa")
        assert container.dunning.process_manual(TENANT, 1, 2900).to_state == "cut_off"
        assert tenant_row(container)["api_access_enabled"] is False
    finally:
        container.close()
    path.write_text('[[steps]]\nfailures = 1\nname = "x"\naccess = "sometimes"\n')
    with pytest.raises(ConfigurationError, match="access must be one of"):
        make_container(make_settings(database_url, dunning_policy_file=path), sandbox)
