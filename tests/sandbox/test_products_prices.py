"""Products and prices through the official client: tiers, metered prices, lookup keys."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import stripe

from stripe_sandbox.resources.prices import price_of

# The mission's plans: a graduated overage price, first tier free up to the included amount.
PLANS = [("starter", 10_000, "0.1"), ("pro", 100_000, "0.08"), ("enterprise", 1_000_000, "0.05")]


def _events(sandbox, event_type: str) -> list[dict]:
    return [e for e in sandbox.store.all("event") if e["type"] == event_type]


@pytest.fixture
def meter(client: stripe.StripeClient) -> stripe.billing.Meter:
    return client.v1.billing.meters.create(params={
        "display_name": "Queries", "event_name": "queries",
        "default_aggregation": {"formula": "sum"},
    })


@pytest.fixture
def product(client: stripe.StripeClient) -> stripe.Product:
    return client.v1.products.create(params={"name": "Search API"})


def _raw(sandbox, path: str) -> dict:
    """The JSON body exactly as the wire carries it (stripe-python turns decimals into Decimal)."""
    response = sandbox.handle("GET", path, {"Authorization": "Bearer sk_test_x"}, None)
    assert response.status == 200
    return json.loads(response.body)


def _overage(client, product, meter, included: int, rate: str, **extra) -> stripe.Price:
    return client.v1.prices.create(params={
        "currency": "usd", "product": product.id, "billing_scheme": "tiered",
        "tiers_mode": "graduated",
        "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        "tiers": [{"up_to": included, "unit_amount": 0},
                  {"up_to": "inf", "unit_amount_decimal": rate}],
        **extra,
    })


def test_graduated_overage_prices_round_trip_exactly(client, sandbox, product, meter) -> None:
    for plan, included, rate in PLANS:
        price = _overage(client, product, meter, included, rate, lookup_key=f"{plan}_overage")
        assert "tiers" not in price  # an includable field: only with expand
        fetched = client.v1.prices.retrieve(price.id, params={"expand": ["tiers"]})
        assert [t.to_dict() for t in fetched.tiers] == [
            {"flat_amount": None, "flat_amount_decimal": None, "unit_amount": 0,
             "unit_amount_decimal": Decimal("0"), "up_to": included},
            {"flat_amount": None, "flat_amount_decimal": None, "unit_amount": None,
             "unit_amount_decimal": Decimal(rate), "up_to": None},
        ]
        wire = _raw(sandbox, f"/v1/prices/{price.id}?expand[]=tiers")["tiers"]
        assert [(t["unit_amount_decimal"], t["up_to"]) for t in wire] == [
            ("0", included), (rate, None)]
        assert (fetched.billing_scheme, fetched.tiers_mode) == ("tiered", "graduated")
        assert fetched.unit_amount is None and fetched.unit_amount_decimal is None
        assert fetched.recurring.to_dict() == {
            "interval": "month", "interval_count": 1, "meter": meter.id,
            "trial_period_days": None, "usage_type": "metered"}
        stored = price_of(sandbox.store, price.id)["_tiers"]
        assert Decimal(stored[1]["unit_amount_decimal"]) == Decimal(rate)
    listed = client.v1.prices.list(params={"lookup_keys": ["pro_overage"],
                                           "expand": ["data.tiers"]})
    assert [t.unit_amount_decimal for t in listed.data[0].tiers] == [Decimal(0), Decimal("0.08")]
    assert len(_events(sandbox, "price.created")) == 3


def test_flat_licensed_prices_and_decimal_amounts(client, sandbox, product) -> None:
    base = client.v1.prices.create(params={
        "currency": "USD", "product": product.id, "unit_amount": 2900,
        "recurring": {"interval": "month"}, "nickname": "Starter"})
    assert (base.unit_amount, base.unit_amount_decimal, base.currency) == (
        2900, Decimal(2900), "usd")
    assert (base.type, base.billing_scheme, base.recurring.usage_type) == (
        "recurring", "per_unit", "licensed")
    whole = client.v1.prices.create(params={
        "currency": "usd", "product": product.id, "unit_amount_decimal": "11900.00"})
    assert (whole.unit_amount, whole.type) == (11900, "one_time")
    assert _raw(sandbox, f"/v1/prices/{whole.id}")["unit_amount_decimal"] == "11900"
    fraction = client.v1.prices.create(params={
        "currency": "usd", "product": product.id, "unit_amount_decimal": "0.125"})
    assert fraction.unit_amount is None
    assert _raw(sandbox, f"/v1/prices/{fraction.id}")["unit_amount_decimal"] == "0.125"


def test_volume_tiers_with_flat_amounts(client, sandbox, product) -> None:
    price = client.v1.prices.create(params={
        "currency": "usd", "product": product.id, "billing_scheme": "tiered",
        "tiers_mode": "volume", "recurring": {"interval": "month"},
        "tiers": [{"up_to": 5, "flat_amount": 1000, "unit_amount": 0},
                  {"up_to": "inf", "flat_amount_decimal": "500.5", "unit_amount": 700}],
    })
    assert _raw(sandbox, f"/v1/prices/{price.id}?expand[]=tiers")["tiers"] == [
        {"flat_amount": 1000, "flat_amount_decimal": "1000", "unit_amount": 0,
         "unit_amount_decimal": "0", "up_to": 5},
        {"flat_amount": None, "flat_amount_decimal": "500.5", "unit_amount": 700,
         "unit_amount_decimal": "700", "up_to": None},
    ]


@pytest.mark.parametrize(("params", "param", "message"), [
    ({"billing_scheme": "tiered", "tiers": [{"up_to": "inf", "unit_amount": 1}]},
     "tiers_mode", "Missing required param: tiers_mode."),
    ({"billing_scheme": "tiered", "tiers_mode": "graduated",
      "tiers": [{"up_to": 10, "unit_amount": 0}, {"up_to": 20, "unit_amount": 1}]},
     "tiers[1][up_to]", "The last tier must have `up_to` set to `inf`."),
    ({"billing_scheme": "tiered", "tiers_mode": "graduated",
      "tiers": [{"up_to": 10, "unit_amount": 0}, {"up_to": "inf"}]},
     "tiers[1]", "An entry in the tiers array is missing an amount."),
    ({"billing_scheme": "tiered", "tiers_mode": "volume",
      "tiers": [{"up_to": "inf", "unit_amount": 1, "unit_amount_decimal": "1"}]},
     "tiers[0][unit_amount]",
     "You may only specify one of these parameters: unit_amount, unit_amount_decimal."),
    ({"unit_amount": 5, "unit_amount_decimal": "5"}, "unit_amount",
     "You may only specify one of these parameters: unit_amount, unit_amount_decimal."),
    ({"unit_amount": 5, "recurring": {"interval": "month", "usage_type": "metered"}},
     "recurring[meter]", "Metered prices must be backed by a billing meter"),
    ({"unit_amount": 5, "recurring": {"interval": "month", "usage_type": "metered",
                                      "meter": "mtr_missing"}},
     "recurring[meter]", "No such billing meter: 'mtr_missing'"),
    ({"unit_amount": 5, "recurring": {"interval": "month", "interval_count": 13}},
     "recurring[interval_count]", "maximum of one year interval allowed"),
])
def test_invalid_prices_are_refused_as_stripe_words_it(client, sandbox, product, params,
                                                       param, message) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.prices.create(params={"currency": "usd", "product": product.id, **params})
    assert info.value.http_status == 400
    assert info.value.param == param
    assert message in info.value.user_message
    assert sandbox.store.all("price") == []


def test_lookup_key_is_unique_unless_transferred(client, sandbox, product) -> None:
    old = client.v1.prices.create(params={"currency": "usd", "product": product.id,
                                          "unit_amount": 2900, "lookup_key": "starter"})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.prices.create(params={"currency": "usd", "product": product.id,
                                        "unit_amount": 3900, "lookup_key": "starter"})
    assert info.value.user_message == f"A price (`{old.id}`) already uses that lookup key."
    new = client.v1.prices.create(params={"currency": "usd", "product": product.id,
                                          "unit_amount": 3900, "lookup_key": "starter",
                                          "transfer_lookup_key": True})
    assert client.v1.prices.retrieve(old.id).lookup_key is None
    found = client.v1.prices.list(params={"lookup_keys": ["starter"]}).data
    assert [p.id for p in found] == [new.id]
    moved = [e for e in _events(sandbox, "price.updated") if e["data"]["object"]["id"] == old.id]
    assert moved[-1]["data"]["previous_attributes"] == {"lookup_key": "starter"}
    # Back again through update.
    client.v1.prices.update(old.id, params={"lookup_key": "starter", "transfer_lookup_key": True})
    assert client.v1.prices.retrieve(new.id).lookup_key is None


def test_amounts_cannot_change_but_other_fields_can(client, sandbox, product) -> None:
    price = client.v1.prices.create(params={"currency": "usd", "product": product.id,
                                            "unit_amount": 100})
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.prices.update(price.id, params={"unit_amount": 200})  # type: ignore[typeddict-unknown-key]
    assert info.value.code == "parameter_unknown"
    updated = client.v1.prices.update(price.id, params={
        "active": False, "nickname": "old", "metadata": {"k": "v"}})
    assert (updated.active, updated.nickname, updated.unit_amount) == (False, "old", 100)
    event = _events(sandbox, "price.updated")[-1]
    assert event["data"]["previous_attributes"] == {"active": True, "nickname": None,
                                                    "metadata": {}}


def test_price_list_filters_and_search(client, product, meter) -> None:
    other = client.v1.products.create(params={"name": "Other"})
    licensed = client.v1.prices.create(params={
        "currency": "usd", "product": product.id, "unit_amount": 2900,
        "recurring": {"interval": "month"}})
    metered = _overage(client, product, meter, 10, "0.1")
    one_time = client.v1.prices.create(params={"currency": "eur", "product": other.id,
                                               "unit_amount": 500, "metadata": {"plan": "x"}})
    client.v1.prices.update(licensed.id, params={"active": False})

    def ids(**params) -> list[str]:
        return [p.id for p in client.v1.prices.list(params=params).data]

    assert ids() == [one_time.id, metered.id, licensed.id]
    assert ids(active=True) == [one_time.id, metered.id]
    assert ids(product=product.id) == [metered.id, licensed.id]
    assert ids(type="one_time") == [one_time.id]
    assert ids(currency="eur") == [one_time.id]
    assert ids(recurring={"usage_type": "metered"}) == [metered.id]
    assert ids(recurring={"meter": meter.id}) == [metered.id]
    found = client.v1.prices.search(params={"query": "metadata['plan']:'x'"}).data
    assert [p.id for p in found] == [one_time.id]
    found = client.v1.prices.search(params={"query": "active:'false'"}).data
    assert [p.id for p in found] == [licensed.id]


def test_products_crud_list_search_and_delete_rules(client, sandbox) -> None:
    a = client.v1.products.create(params={"name": "A", "metadata": {"tier": "gold"}})
    b = client.v1.products.create(params={"name": "B", "active": False,
                                          "default_price_data": {"currency": "usd",
                                                                 "unit_amount": 900}})
    assert a.type == "service" and a.default_price is None
    assert client.v1.prices.retrieve(b.default_price).product == b.id
    updated = client.v1.products.update(a.id, params={"description": "Alpha"})
    assert updated.description == "Alpha" and updated.updated >= a.updated
    assert [p.id for p in client.v1.products.list(params={"active": True}).data] == [a.id]
    assert [p.id for p in client.v1.products.list(params={"ids": [b.id]}).data] == [b.id]
    found = client.v1.products.search(params={"query": "active:'true' AND name:'A'"}).data
    assert [p.id for p in found] == [a.id]

    with pytest.raises(stripe.InvalidRequestError, match="one or more user-created prices"):
        client.v1.products.delete(b.id)
    gone = client.v1.products.delete(a.id)
    assert gone.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.products.retrieve(a.id)
    assert info.value.http_status == 404
    kinds = [e["type"] for e in sandbox.store.all("event") if e["type"].startswith("product.")]
    assert kinds == ["product.created", "product.created", "product.updated", "product.deleted"]


def test_price_with_inline_product_data(client, sandbox) -> None:
    price = client.v1.prices.create(params={
        "currency": "usd", "unit_amount": 4900, "recurring": {"interval": "month"},
        "product_data": {"name": "Pro plan", "metadata": {"plan": "pro"}}})
    product = client.v1.products.retrieve(price.product)
    assert product.name == "Pro plan" and product.metadata.to_dict() == {"plan": "pro"}
    with pytest.raises(stripe.InvalidRequestError, match="No such product"):
        client.v1.prices.create(params={"currency": "usd", "unit_amount": 1,
                                        "product": "prod_missing"})
