"""Requests are checked against stripe-python's own parameter types, with Stripe's errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
import stripe
from stripe._encode import _api_encode

from stripe_sandbox import Sandbox, SandboxConfig, SandboxHTTPClient
from stripe_sandbox.errors import InvalidRequestError
from stripe_sandbox.router import Route, Routes
from stripe_sandbox.validation import build_validator, params_type_for, unvalidated_routes
from stripe_sandbox.wire import decode_form

from .stripe_reference import TRIGGERS


def refused(call: Callable[[], Any]) -> stripe.InvalidRequestError:
    with pytest.raises(stripe.InvalidRequestError) as info:
        call()
    assert info.value.http_status == 400
    return info.value


def assert_error(error: stripe.InvalidRequestError, code: str | None, param: str,
                 message: str) -> None:
    assert (error.code, error.param, error.user_message) == (code, param, message)


# --- through the official client ---------------------------------------------------------------


def test_unknown_parameter(client: stripe.StripeClient) -> None:
    error = refused(lambda: client.v1.customers.create(params={"email": "a@b.c", "bogus": "1"}))
    assert_error(error, "parameter_unknown", "bogus", "Received unknown parameter: bogus")
    assert client.v1.customers.list().data == []  # refused before anything was written
    error = refused(lambda: client.v1.customers.create(params={"quantity": 1, "trial_end": 5}))
    assert_error(error, "parameter_unknown", "quantity",
                 "Received unknown parameters: quantity, trial_end")


def test_unknown_nested_parameter(client: stripe.StripeClient) -> None:
    error = refused(lambda: client.v1.customers.create(
        params={"address": {"city": "Paris", "bogus": "x"}}))
    assert_error(error, "parameter_unknown", "address[bogus]",
                 "Received unknown parameter: address[bogus]")


def test_unknown_parameter_in_a_list_item(client: stripe.StripeClient) -> None:
    error = refused(lambda: client.v1.prices.create(params={
        "currency": "usd", "product": "prod_x", "billing_scheme": "tiered",
        "tiers_mode": "graduated", "recurring": {"interval": "month"},
        "tiers": [{"up_to": 10, "unit_amount": 0}, {"up_to": "inf", "bogus": "1"}]}))
    assert_error(error, "parameter_unknown", "tiers[1][bogus]",
                 "Received unknown parameter: tiers[1][bogus]")
    error = refused(lambda: client.v1.subscriptions.create(params={
        "customer": "cus_x", "items": [{"price": "price_a"}, {"price": "price_b", "bogus": 1}]}))
    assert_error(error, "parameter_unknown", "items[1][bogus]",
                 "Received unknown parameter: items[1][bogus]")


def test_missing_required_parameter(client: stripe.StripeClient) -> None:
    error = refused(lambda: client.v1.prices.create(
        params={"product": "prod_x", "unit_amount": 500}))
    assert_error(error, "parameter_missing", "currency", "Missing required param: currency.")


def test_missing_required_nested_parameter(client: stripe.StripeClient) -> None:
    error = refused(lambda: client.v1.prices.create(params={
        "currency": "usd", "product": "prod_x", "unit_amount": 500,
        "recurring": {"usage_type": "licensed"}}))
    assert_error(error, "parameter_missing", "recurring[interval]",
                 "Missing required param: recurring[interval].")


@pytest.mark.parametrize(("call", "code", "param", "message"), [
    (lambda c: c.v1.customers.list(params={"limit": "abc"}),
     "parameter_invalid_integer", "limit", "Invalid integer: abc"),
    (lambda c: c.v1.prices.create(params={"currency": "usd", "product": "p", "unit_amount": "x"}),
     "parameter_invalid_integer", "unit_amount", "Invalid integer: x"),
    (lambda c: c.v1.customers.create(params={"balance": 10.5}),
     "parameter_invalid_integer", "balance", "Invalid integer: 10.5"),
    (lambda c: c.v1.customers.list(params={"created": {"gte": "yesterday"}}),
     "parameter_invalid_integer", "created[gte]", "Invalid integer: yesterday"),
    (lambda c: c.v1.products.create(params={"name": "Pro", "active": "yes"}),
     "parameter_invalid_boolean", "active", "Invalid boolean: yes"),
    (lambda c: c.v1.prices.create(params={"currency": "usd", "product": "p",
                                          "unit_amount_decimal": "1.2.3"}),
     "parameter_invalid_decimal", "unit_amount_decimal", "Invalid decimal: 1.2.3"),
])
def test_wrong_type(client: stripe.StripeClient, call: Callable[[stripe.StripeClient], Any],
                    code: str, param: str, message: str) -> None:
    assert_error(refused(lambda: call(client)), code, param, message)


def test_value_outside_an_enum(client: stripe.StripeClient) -> None:
    error = refused(lambda: client.v1.customers.create(params={"tax_exempt": "maybe"}))
    assert_error(error, None, "tax_exempt",
                 "Invalid tax_exempt: must be one of exempt, none, or reverse")
    error = refused(lambda: client.v1.prices.create(params={
        "currency": "usd", "product": "p", "recurring": {"interval": "daily"}}))
    assert_error(error, None, "recurring[interval]",
                 "Invalid recurring[interval]: must be one of day, month, week, or year")


def test_object_and_list_shapes(client: stripe.StripeClient) -> None:
    assert_error(refused(lambda: client.v1.customers.create(params={"address": "Paris"})),
                 None, "address", "Invalid object")
    assert_error(refused(lambda: client.v1.customers.create(params={"preferred_locales": "en"})),
                 None, "preferred_locales", "Invalid array")


def test_empty_string_unsets_only_where_the_type_allows_it(
        client: stripe.StripeClient) -> None:
    error = refused(lambda: client.v1.customers.create(params={"balance": ""}))
    assert error.code == "parameter_invalid_empty" and error.param == "balance"
    assert "You passed an empty string for 'balance'" in (error.user_message or "")
    customer = client.v1.customers.create(params={"address": {"city": "Paris"},
                                                  "metadata": {"a": "1"}})
    cleared = client.v1.customers.update(customer.id, params={"address": "", "metadata": ""})
    assert cleared.address is None and cleared.metadata.to_dict() == {}


def test_valid_customer_requests_pass(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={
        "email": "ops@example.com", "name": "Acme", "description": "tenant",
        "metadata": {"tenant_id": "t1", "0": "digits are keys too"},
        "address": {"line1": "1 Main St", "city": "Paris", "country": "FR"},
        "preferred_locales": ["fr", "en"], "tax_exempt": "none",
        "invoice_settings": {"footer": "Thanks", "custom_fields": ""},
    })
    client.v1.customers.update(customer.id, params={"phone": "+33100000000",
                                                    "tax_exempt": "", "shipping": ""})
    client.v1.customers.retrieve(customer.id)
    page = client.v1.customers.list(params={"limit": 3, "email": "ops@example.com",
                                            "created": {"gte": 0, "lte": 4102444800}})
    assert [c.id for c in page.data] == [customer.id]
    client.v1.customers.list(params={"created": 0})
    client.v1.customers.search(params={"query": "metadata['tenant_id']:'t1'", "limit": 10})
    assert client.v1.customers.delete(customer.id).deleted is True


def test_switched_off_by_config() -> None:
    sandbox = Sandbox(SandboxConfig(validate_params=False))
    client = stripe.StripeClient("sk_test_x", http_client=SandboxHTTPClient(sandbox),
                                 max_network_retries=0)
    assert client.v1.customers.create(params={"bogus": "1"}).id.startswith("cus_")


# --- the validator on its own ------------------------------------------------------------------


def _route(method: str, pattern: str) -> Route:
    routes = Routes()
    routes.add(method, pattern)(lambda call, **ids: {})
    return routes.items[0]


def test_routes_are_matched_by_path_shape_not_placeholder_names() -> None:
    from stripe.params import CustomerUpdateParams

    assert params_type_for("POST", "/v1/customers/{customer}") is CustomerUpdateParams
    assert params_type_for("post", "/v1/customers/{id}") is CustomerUpdateParams
    assert params_type_for("POST", "/_sandbox/faults") is None


def test_routes_without_a_stripe_python_type_pass_unchecked() -> None:
    validate = build_validator(Sandbox().router)
    validate(_route("POST", "/v2/billing/meter_events"), {"anything": {"goes": 1}})
    validate(_route("POST", "/v1/not_a_stripe_endpoint"), {"anything": "1"})


def test_every_v1_route_of_the_sandbox_is_validated(sandbox: Sandbox) -> None:
    missing = [f"{r.method} {r.pattern}" for r in unvalidated_routes(sandbox.router)]
    assert missing == [], f"routes stripe-python does not declare: {missing}"


def test_json_values_are_accepted_as_their_own_types() -> None:
    validate = build_validator(Sandbox().router)
    validate(_route("POST", "/v1/prices"), {"currency": "usd", "product": "p", "unit_amount": 5,
                                            "active": True, "tiers": [{"up_to": "inf"}]})
    with pytest.raises(InvalidRequestError, match="Invalid boolean: 1"):
        validate(_route("POST", "/v1/prices"), {"currency": "usd", "active": 1})


def _trigger_requests() -> list[tuple[str, str, str, dict[str, Any]]]:
    found = []
    for path in sorted(TRIGGERS.glob("*.json")):
        for fixture in json.loads(path.read_text())["fixtures"]:
            filled = re.sub(r"\$\{[^}]*\}", "x_1", json.dumps(fixture))
            fixture = json.loads(filled)
            found.append((path.name, fixture["method"].upper(), fixture["path"],
                          fixture.get("params", {})))
    return found


def test_stripe_cli_trigger_requests_are_valid() -> None:
    """Requests Stripe's own CLI sends must pass, encoded as stripe-python encodes them."""
    requests = _trigger_requests()
    assert requests, f"no Stripe CLI triggers found in {TRIGGERS}"
    validate = build_validator(Sandbox().router)
    for name, method, path, params in requests:
        # The route pattern: ids (filled in above, or test tokens) become placeholders.
        pattern = re.sub(r"/(x_1|pm_card_\w+)(?=/|$)", "/{id}", path)
        assert params_type_for(method, pattern) is not None, f"{name}: {method} {path}"
        decoded = decode_form(urlencode(list(_api_encode(params))))
        decoded.pop("expand", None)
        validate(_route(method, pattern), decoded)
