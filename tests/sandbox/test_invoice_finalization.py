"""A subscription's draft invoice and its finalization, as Stripe documents them (invoice
verification needs each): the draft hour (`automatically_finalizes_at`, configurable), a draft
held with `auto_advance=false` (no scheduled finalization, never finalized or charged by the
clock), invoice items put on a draft, manual finalization with or without collection, and the
events each step emits."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
import stripe

from stripe_sandbox import Sandbox, SandboxConfig, SandboxHTTPClient
from stripe_sandbox.__main__ import build_parser, configure

from .billing_setup import (
    DAY,
    HOUR,
    START,
    advance,
    clock_and_customer,
    events,
    make_meter,
    make_plan,
    report_usage,
    subscribe,
)

RENEWAL = START + 31 * DAY


def renewal_draft(client: stripe.StripeClient, usage: int = 125_000) -> tuple[Any, Any, Any]:
    plan = make_plan(client, make_meter(client), "pro")
    clock, customer = clock_and_customer(client)
    sub = subscribe(client, customer, plan)
    advance(client, clock, START + 20 * DAY)
    report_usage(client, customer, usage)
    advance(client, clock, RENEWAL + 10 * 60)
    draft = client.v1.invoices.retrieve(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    assert (draft.status, draft.billing_reason) == ("draft", "subscription_cycle")
    return clock, customer, draft


def of(sandbox: Sandbox, event_type: str, invoice_id: str) -> list[dict[str, Any]]:
    return [e for e in events(sandbox, event_type) if e["data"]["object"]["id"] == invoice_id]


def test_a_held_draft_is_never_finalized_or_charged_by_the_clock(
        client: stripe.StripeClient, sandbox: Sandbox) -> None:
    clock, customer, draft = renewal_draft(client)
    assert draft.auto_advance is True
    assert draft.automatically_finalizes_at == RENEWAL + HOUR  # the draft hour
    held = client.v1.invoices.update(draft.id, params={"auto_advance": False})
    # Stripe: null when the invoice is not scheduled to finalize.
    assert (held.auto_advance, held.automatically_finalizes_at) == (False, None)
    updated = of(sandbox, "invoice.updated", draft.id)[-1]
    assert updated["data"]["previous_attributes"] == {
        "auto_advance": True, "automatically_finalizes_at": RENEWAL + HOUR}
    advance(client, clock, RENEWAL + 10 * DAY)
    still = client.v1.invoices.retrieve(draft.id)
    assert (still.status, still.amount_paid, still.attempt_count) == ("draft", 0, 0)
    assert of(sandbox, "invoice.finalized", draft.id) == []
    # Turned back on, it is scheduled a grace period from now and finalized then.
    resumed = client.v1.invoices.update(draft.id, params={"auto_advance": True})
    assert resumed.automatically_finalizes_at == RENEWAL + 10 * DAY + HOUR
    advance(client, clock, RENEWAL + 10 * DAY + 2 * HOUR)
    assert client.v1.invoices.retrieve(draft.id).status == "paid"


def test_an_invoice_item_on_a_held_draft_then_manual_finalize_charges_the_new_total(
        client: stripe.StripeClient, sandbox: Sandbox) -> None:
    _, customer, draft = renewal_draft(client)
    client.v1.invoices.update(draft.id, params={"auto_advance": False})
    item = client.v1.invoice_items.create(params={
        "customer": customer.id, "invoice": draft.id, "amount": -400, "currency": "usd",
        "description": "Usage correction"})
    assert item.invoice == draft.id
    assert [e["data"]["object"]["id"] for e in events(sandbox, "invoiceitem.created")] == [
        item.id]
    with_item = client.v1.invoices.retrieve(draft.id)
    assert [line.amount for line in with_item.lines.data if line.amount < 0] == [-400]
    assert with_item.total == 9900 + 2000 - 400
    final = client.v1.invoices.finalize_invoice(draft.id, params={"auto_advance": True})
    assert (final.status, final.amount_paid) == ("paid", 11500)
    assert len(of(sandbox, "invoice.finalized", draft.id)) == 1
    assert len(of(sandbox, "invoice.paid", draft.id)) == 1
    # A finalized invoice takes no more items.
    with pytest.raises(stripe.InvalidRequestError, match="draft invoices"):
        client.v1.invoice_items.create(params={
            "customer": customer.id, "invoice": draft.id, "amount": 100, "currency": "usd"})


def test_finalize_without_collection_then_void_charges_nothing(
        client: stripe.StripeClient, sandbox: Sandbox) -> None:
    clock, _, draft = renewal_draft(client)
    client.v1.invoices.update(draft.id, params={"auto_advance": False})
    opened = client.v1.invoices.finalize_invoice(draft.id, params={"auto_advance": False})
    assert (opened.status, opened.amount_paid, opened.attempt_count) == ("open", 0, 0)
    assert opened.next_payment_attempt is None
    advance(client, clock, RENEWAL + 5 * DAY)
    assert client.v1.invoices.retrieve(draft.id).attempt_count == 0  # never collected
    voided = client.v1.invoices.void_invoice(draft.id)
    assert (voided.status, voided.amount_paid, voided.amount_remaining) == ("void", 0, 0)
    assert len(of(sandbox, "invoice.voided", draft.id)) == 1
    # A subscription's draft cannot be deleted: it must be finalized, then voided.
    assert of(sandbox, "invoice.deleted", draft.id) == []


def test_the_draft_hour_is_configurable(sandbox: Sandbox) -> None:
    slow = Sandbox(SandboxConfig(draft_grace_seconds=3 * HOUR))
    client = stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(slow),
                                 max_network_retries=0)
    clock, _, draft = renewal_draft(client)
    assert draft.automatically_finalizes_at == RENEWAL + 3 * HOUR
    advance(client, clock, RENEWAL + 2 * HOUR)
    assert client.v1.invoices.retrieve(draft.id).status == "draft"
    advance(client, clock, RENEWAL + 4 * HOUR)
    assert client.v1.invoices.retrieve(draft.id).status == "paid"
    # `python -m stripe_sandbox --draft-grace-seconds N` sets it; a negative one is refused.
    args: argparse.Namespace = build_parser().parse_args(["--draft-grace-seconds", "7200"])
    configure(sandbox, args)
    assert sandbox.config.draft_grace_seconds == 7200
    with pytest.raises(ValueError, match="draft-grace-seconds"):
        configure(sandbox, build_parser().parse_args(["--draft-grace-seconds", "-1"]))
