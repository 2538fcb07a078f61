import threading

import pytest
import stripe


def test_create_retrieve_update_delete(client: stripe.StripeClient) -> None:
    created = client.v1.customers.create(
        params={"email": "a@example.com", "name": "A", "metadata": {"tenant_id": "t1"}}
    )
    assert created.id.startswith("cus_")
    assert client.v1.customers.retrieve(created.id).email == "a@example.com"
    updated = client.v1.customers.update(
        created.id, params={"name": "B", "metadata": {"tenant_id": "", "tier": "x"}}
    )
    assert updated.name == "B"
    assert updated.metadata.to_dict() == {"tier": "x"}
    gone = client.v1.customers.delete(created.id)
    assert gone.deleted is True
    assert client.v1.customers.retrieve(created.id)["deleted"] is True


def test_search_by_metadata_and_email(client: stripe.StripeClient) -> None:
    a = client.v1.customers.create(params={"email": "a@b.c", "metadata": {"tenant_id": "t1"}})
    client.v1.customers.create(params={"email": "x@b.c", "metadata": {"tenant_id": "t2"}})
    found = client.v1.customers.search(params={"query": "metadata['tenant_id']:'t1'"})
    assert [c.id for c in found.data] == [a.id]
    by_email = client.v1.customers.search(params={"query": "email:'a@b.c'"})
    assert [c.id for c in by_email.data] == [a.id]


def test_list_filters_and_paginates(client: stripe.StripeClient) -> None:
    ids = [client.v1.customers.create(params={"email": f"{i}@b.c"}).id for i in range(5)]
    page = client.v1.customers.list(params={"limit": 2})
    assert [c.id for c in page.data] == ids[::-1][:2] and page.has_more
    rest = client.v1.customers.list(params={"limit": 10, "starting_after": page.data[-1].id})
    assert [c.id for c in rest.data] == ids[::-1][2:] and not rest.has_more
    assert [c.id for c in client.v1.customers.list(params={"email": "3@b.c"}).data] == [ids[3]]


def test_unknown_customer_is_404(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.retrieve("cus_missing")
    assert info.value.http_status == 404
    assert info.value.code == "resource_missing"


def test_only_test_secret_keys_are_accepted(sandbox) -> None:
    from stripe_sandbox import SandboxHTTPClient

    live = stripe.StripeClient("sk_live_abc", http_client=SandboxHTTPClient(sandbox))
    with pytest.raises(stripe.AuthenticationError):
        live.v1.customers.list()


def test_one_idempotency_key_under_concurrency_makes_one_customer(client, sandbox) -> None:
    made: list[str] = []

    def create() -> None:
        made.append(
            client.v1.customers.create(
                params={"email": "race@b.c"}, options={"idempotency_key": "customer:race"}
            ).id
        )

    threads = [threading.Thread(target=create) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 20 and len(set(made)) == 1
    assert len([c for c in sandbox.store.all("customer") if c["email"] == "race@b.c"]) == 1
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(
            params={"email": "other@b.c"}, options={"idempotency_key": "customer:race"}
        )


def test_declined_card_at_creation_creates_nothing(client, sandbox) -> None:
    with pytest.raises(stripe.CardError) as info:
        client.v1.customers.create(
            params={"email": "d@b.c", "payment_method": "pm_card_chargeDeclined"}
        )
    assert info.value.code == "card_declined"
    assert sandbox.store.all("customer") == []


def test_test_token_as_payment_method_and_default_names_one_method(client) -> None:
    customer = client.v1.customers.create(
        params={
            "email": "v@b.c",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    default = customer.invoice_settings.default_payment_method
    assert default is not None and default.startswith("pm_") and default != "pm_card_visa"
    attached = client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"})
    assert [pm.id for pm in attached.data] == [default]
