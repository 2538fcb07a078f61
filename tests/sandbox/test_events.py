"""GET /v1/events and /v1/events/{id}: filters, pagination, 30-day retention."""

from __future__ import annotations

import pytest
import stripe

from stripe_sandbox import Sandbox, SandboxConfig
from stripe_sandbox.resources.events import RETENTION_SECONDS

from .stripe_reference import fixtures

FIXTURES = fixtures()


@pytest.fixture
def sandbox() -> Sandbox:
    """Not checked against Stripe's types (see tests/conftest.py): these tests emit hand-made events
    around stub objects to test filtering and retention, not the objects' shapes."""
    return Sandbox(SandboxConfig())


def _types(page: stripe.ListObject) -> list[str]:  # type: ignore[type-arg]
    return [e.type for e in page.data]


def test_customer_changes_are_listed_newest_first(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "e@example.com"})
    client.v1.customers.update(customer.id, params={"name": "New"})
    client.v1.customers.delete(customer.id)

    events = client.v1.events.list()
    assert _types(events) == ["customer.deleted", "customer.updated", "customer.created"]
    updated = events.data[1]
    assert isinstance(updated, stripe.Event)
    assert set(FIXTURES["event"]) <= set(updated.to_dict())
    assert updated.data.object.name == "New"
    assert updated.data.previous_attributes.to_dict() == {"name": None}
    assert updated.request.id and updated.request.id.startswith("req_")
    assert client.v1.events.retrieve(updated.id).id == updated.id


def test_filter_by_type_wildcard_and_types(client: stripe.StripeClient, sandbox: Sandbox) -> None:
    with sandbox.lock:
        for kind in ("invoice.created", "invoice.paid", "customer.created", "invoice.paid"):
            sandbox.emit(kind, {"id": "in_x", "object": "invoice"})
    assert _types(client.v1.events.list(params={"type": "invoice.paid"})) == ["invoice.paid"] * 2
    assert _types(client.v1.events.list(params={"type": "invoice.*"})) == [
        "invoice.paid", "invoice.paid", "invoice.created"]
    assert sorted(_types(client.v1.events.list(
        params={"types": ["customer.created", "invoice.created"]}))) == [
        "customer.created", "invoice.created"]


def test_type_and_types_together_is_an_error(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.events.list(params={"type": "invoice.paid", "types": ["invoice.paid"]})
    assert info.value.http_status == 400


def test_created_filter_and_pagination(client: stripe.StripeClient, sandbox: Sandbox) -> None:
    now = sandbox.now()
    with sandbox.lock:
        made = [sandbox.emit("customer.updated", {"id": f"cus_{i}", "object": "customer"})
                for i in range(5)]
        for age, event in zip((400, 300, 200, 100, 0), made, strict=True):
            event["created"] = now - age
    ids = [e["id"] for e in made]

    recent = client.v1.events.list(params={"created": {"gte": now - 250}})
    assert [e.id for e in recent.data] == ids[:1:-1]
    assert [e.id for e in client.v1.events.list(params={"created": now - 300}).data] == [ids[1]]

    first = client.v1.events.list(params={"limit": 2})
    assert [e.id for e in first.data] == [ids[4], ids[3]] and first.has_more
    second = client.v1.events.list(params={"limit": 2, "starting_after": first.data[-1].id})
    assert [e.id for e in second.data] == [ids[2], ids[1]] and second.has_more
    assert [e.id for e in client.v1.events.list(params={"ending_before": ids[1]}).data] \
        == [ids[4], ids[3], ids[2]]
    every = [e.id for e in client.v1.events.list(params={"limit": 2}).auto_paging_iter()]
    assert every == ids[::-1]


def test_events_older_than_30_days_are_gone(client: stripe.StripeClient,
                                            sandbox: Sandbox) -> None:
    with sandbox.lock:
        old = sandbox.emit("customer.created", {"id": "cus_old", "object": "customer"})
        kept = sandbox.emit("customer.created", {"id": "cus_new", "object": "customer"})
        old["created"] = sandbox.now() - RETENTION_SECONDS - 1
        kept["created"] = sandbox.now() - RETENTION_SECONDS + 60
    assert [e.id for e in client.v1.events.list().data] == [kept["id"]]
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.events.retrieve(old["id"])
    assert info.value.http_status == 404


def test_unknown_event_is_404(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.events.retrieve("evt_missing")
    assert info.value.http_status == 404 and info.value.code == "resource_missing"


def test_event_snapshot_does_not_change_with_the_object(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "snap@example.com"})
    client.v1.customers.update(customer.id, params={"email": "changed@example.com"})
    created = client.v1.events.list(params={"type": "customer.created"}).data[0]
    assert created.data.object.email == "snap@example.com"


def test_delivery_success_filter(client: stripe.StripeClient, sandbox: Sandbox) -> None:
    with sandbox.lock:
        done = sandbox.emit("invoice.paid", {"id": "in_1", "object": "invoice"})
        waiting = sandbox.emit("invoice.paid", {"id": "in_2", "object": "invoice"})
        waiting["pending_webhooks"] = 1
    assert [e.id for e in client.v1.events.list(params={"delivery_success": True}).data] \
        == [done["id"]]
    assert [e.id for e in client.v1.events.list(params={"delivery_success": False}).data] \
        == [waiting["id"]]
