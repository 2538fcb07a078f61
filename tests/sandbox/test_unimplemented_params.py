"""No parameter is silently ignored: each one stripe-python declares is implemented or refused.

For every POST route the sandbox serves with a stripe-python `*Params` type, every top-level
parameter that type declares is sent, alone, on top of a request that succeeds (in a fresh
sandbox holding a customer, prices, a subscription, invoices...). The answer must be one of:

- a 400 naming the parameter, because the sandbox lists it as not implemented
  (`stripe_sandbox.unimplemented.REFUSED`, the README's known gaps) or its handler checked the
  dummy value and found it wrong (which shows the handler reads it);
- anything else, provided the handler read the parameter (the params dict records reads).

A parameter that is neither read nor refused is reported: Stripe would act on it and the
sandbox would not. Request validation is off here so that dummy values reach the handlers.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import stripe
from stripe._encode import _api_encode
from stripe._request_options import RequestOptions
from typing_extensions import is_typeddict

from stripe_sandbox import Sandbox, SandboxConfig, SandboxHTTPClient, engine
from stripe_sandbox.persistence import dump_state, load_state
from stripe_sandbox.unimplemented import REFUSED
from stripe_sandbox.validation import params_type_for

HEADERS = {"Authorization": "Bearer sk_test_params"}


class ReadTracking(dict[str, Any]):
    """Params that remember which keys a handler looked at (iterating them does not count)."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)

    def pop(self, key: str, *default: Any) -> Any:
        self.read.add(key)
        return super().pop(key, *default)


class World:
    """A fresh sandbox with one of everything the POST routes act on."""

    def __init__(self) -> None:
        self.sandbox = Sandbox(SandboxConfig(validate_params=False))
        self.client = stripe.StripeClient("sk_test_params", max_network_retries=0,
                                          http_client=SandboxHTTPClient(self.sandbox))
        v1 = self.client.v1
        self.clock = v1.test_helpers.test_clocks.create(params={"frozen_time": 1_767_225_600})
        self.customer = v1.customers.create(params={
            "test_clock": self.clock.id, "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"}})
        self.pm = self.customer.invoice_settings.default_payment_method
        self.spare_pm = v1.payment_methods.create(params={"type": "card",
                                                          "card": {"token": "tok_visa"}})
        self.product = v1.products.create(params={"name": "Plan"})
        self.price = v1.prices.create(params={"currency": "usd", "product": self.product.id,
                                              "unit_amount": 1000,
                                              "recurring": {"interval": "month"}})
        self.other_price = v1.prices.create(params={
            "currency": "usd", "product": self.product.id, "unit_amount": 500,
            "recurring": {"interval": "month"}})
        self.meter = v1.billing.meters.create(params={
            "display_name": "Q", "event_name": "q", "default_aggregation": {"formula": "sum"}})
        self.sub = v1.subscriptions.create(params={"customer": self.customer.id,
                                                   "items": [{"price": self.price.id}]})
        self.item = self.sub["items"].data[0]
        self.schedule = v1.subscription_schedules.create(params={
            "from_subscription": self.sub.id})
        self.invoice_item = v1.invoice_items.create(params={
            "customer": self.customer.id, "amount": 700, "currency": "usd"})
        self.draft = v1.invoices.create(params={"customer": self.customer.id})
        self.open = v1.invoices.finalize_invoice(v1.invoices.create(params={
            "customer": self.customer.id, "collection_method": "send_invoice",
            "days_until_due": 30, "pending_invoice_items_behavior": "include"}).id)
        self.pending_item = v1.invoice_items.create(params={
            "customer": self.customer.id, "amount": 300, "currency": "usd"})
        self.endpoint = v1.webhook_endpoints.create(params={
            "url": "https://example.com/h", "enabled_events": ["*"]})
        v1.billing.meter_events.create(params={
            "event_name": "q", "identifier": "once",
            "payload": {"stripe_customer_id": self.customer.id, "value": "1"}})
        self.state = dump_state(self.sandbox)

    def fresh(self) -> World:
        """The same world in a new sandbox (loaded from this one's saved state): cheap."""
        twin = copy.copy(self)
        twin.sandbox = Sandbox(SandboxConfig(validate_params=False))
        load_state(twin.sandbox, self.state)
        return twin

    def request(self, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        headers = dict(HEADERS)
        if {} in params.values():  # an empty hash has no form encoding: send JSON
            body = json.dumps(params)
            headers["Content-Type"] = "application/json"
        else:
            body = urlencode(list(_api_encode(params)))
        response = self.sandbox.handle("POST", "http://sandbox" + path, headers, body)
        return response.status, json.loads(response.body)

    def baseline(self, pattern: str) -> tuple[str, dict[str, Any]]:
        """The path and the params of a call that succeeds, for a route pattern."""
        spare = pattern.endswith("/attach") or pattern == "/v1/payment_methods"
        ids = {"{customer}": self.customer.id,
               "{payment_method}": self.spare_pm.id if spare else self.pm,
               "{id}": self.product.id, "{price}": self.price.id, "{invoiceitem}":
               self.pending_item.id, "{subscription_exposed_id}": self.sub.id,
               "{item}": self.item.id, "{schedule}": self.schedule.id,
               "{test_clock}": self.clock.id, "{webhook_endpoint}": self.endpoint.id}
        path = pattern
        if pattern.startswith("/v1/billing/meters/"):
            path = path.replace("{id}", self.meter.id)
        if pattern.startswith("/v1/invoices/{invoice}"):
            target = self.open if pattern.endswith(("/pay", "/send", "/void",
                                                    "/mark_uncollectible")) else self.draft
            path = path.replace("{invoice}", target.id)
        for placeholder, value in ids.items():
            path = path.replace(placeholder, value)
        params = dict(BASELINES.get(pattern, lambda w: {})(self))
        return path, params


BASELINES: dict[str, Any] = {
    "/v1/payment_methods": lambda w: {"type": "card", "card": {"token": "tok_visa"}},
    "/v1/payment_methods/{payment_method}/attach": lambda w: {"customer": w.customer.id},
    "/v1/products": lambda w: {"name": "Another"},
    "/v1/prices": lambda w: {"currency": "usd", "product": w.product.id, "unit_amount": 100},
    "/v1/billing/meters": lambda w: {"display_name": "D", "event_name": "other",
                                     "default_aggregation": {"formula": "sum"}},
    "/v1/billing/meter_events": lambda w: {
        "event_name": "q", "payload": {"stripe_customer_id": w.customer.id, "value": "2"}},
    "/v1/billing/meter_event_adjustments": lambda w: {
        "event_name": "q", "type": "cancel", "cancel": {"identifier": "once"}},
    "/v1/invoiceitems": lambda w: {"customer": w.customer.id, "amount": 100,
                                   "currency": "usd"},
    "/v1/invoices": lambda w: {"customer": w.customer.id},
    "/v1/invoices/create_preview": lambda w: {"customer": w.customer.id,
                                              "subscription": w.sub.id},
    "/v1/subscriptions": lambda w: {"customer": w.customer.id,
                                    "items": [{"price": w.price.id}]},
    "/v1/subscription_items": lambda w: {"subscription": w.sub.id,
                                         "price": w.other_price.id},
    "/v1/subscription_schedules": lambda w: {"customer": w.customer.id, "phases": [
        {"items": [{"price": w.price.id}], "duration": {"interval": "month"}}]},
    "/v1/test_helpers/test_clocks": lambda w: {"frozen_time": 1_767_225_600},
    "/v1/test_helpers/test_clocks/{test_clock}/advance": lambda w: {
        "frozen_time": 1_767_225_660},
    "/v1/webhook_endpoints": lambda w: {"url": "https://example.com/x",
                                        "enabled_events": ["*"]},
    "/v1/billing_portal/sessions": lambda w: {"customer": w.customer.id},
}


def declared_params(cls: type) -> dict[str, Any]:
    """The params type's own top-level parameters (not the request options) and their types."""
    namespace = vars(importlib.import_module(cls.__module__))
    own = {k: v for k, v in cls.__annotations__.items()
           if RequestOptions.__annotations__.get(k) is not v and k != "expand"}
    out = {}
    for name, annotation in own.items():
        holder = types.SimpleNamespace(__annotations__={name: annotation})
        out[name] = typing.get_type_hints(holder, globalns=namespace)[name]
    return out


def dummy(tp: Any, depth: int = 0) -> Any:
    """A value of the declared type, good enough to reach the handler."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Required, typing.NotRequired):
        return dummy(args[0], depth)
    if origin is typing.Literal:
        return next((v for v in args if v != ""), "x")
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        literals = [a for a in args if typing.get_origin(a) is typing.Literal
                    and any(v != "" for v in typing.get_args(a))]
        return dummy(literals[0] if literals else args[0], depth)
    if tp is bool:
        return True
    if tp is int:
        return 1
    if tp is str:
        return "x"
    if origin in (list, typing.List) or str(origin) == "<class 'collections.abc.Sequence'>":  # noqa: UP006
        return [dummy(args[0], depth + 1)] if args else ["x"]
    if origin is dict:
        return {"k": "v"}
    if is_typeddict(tp) and depth < 4:
        fields = declared_params(tp)
        required = getattr(tp, "__required_keys__", frozenset())
        chosen = [k for k in fields if k in required] or list(fields)[:1]  # never empty
        return {k: dummy(fields[k], depth + 1) for k in chosen}
    return "1"


def routes() -> Iterator[tuple[str, str]]:
    sandbox = Sandbox(SandboxConfig(validate_params=False))
    for route in sandbox.router.routes:
        if route.method == "POST" and route.pattern.startswith("/v1/") and \
                params_type_for("POST", route.pattern) is not None:
            yield route.method, route.pattern


ROUTES = sorted(set(routes()))


@pytest.fixture
def tracked(monkeypatch: pytest.MonkeyPatch) -> list[ReadTracking]:
    seen: list[ReadTracking] = []
    original = engine.Call

    def call(sandbox: Sandbox, method: str, path: str, params: dict[str, Any],
             *args: Any) -> engine.Call:
        tracking = ReadTracking(params)
        seen.append(tracking)
        return original(sandbox, method, path, tracking, *args)

    monkeypatch.setattr(engine, "Call", call)
    return seen


@functools.cache
def template() -> World:
    return World()


def _names(error: dict[str, Any], name: str) -> bool:
    param = str(error.get("param") or "")
    return param == name or param.startswith(f"{name}[")


# Parameters that mean something only beside another (sent together).
COMPANIONS = {"transfer_lookup_key": {"lookup_key": "moved"}}


@pytest.mark.parametrize(("method", "pattern"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_declared_parameter_is_read_or_refused(
        method: str, pattern: str, tracked: list[ReadTracking]) -> None:
    cls = params_type_for(method, pattern)
    assert cls is not None
    problems: list[str] = []
    path, params = template().baseline(pattern)
    status, body = template().fresh().request(path, params)
    assert status == 200, f"the baseline {pattern} {params} fails: {body}"
    for name, tp in sorted(declared_params(cls).items()):
        world = template().fresh()
        refused = name in REFUSED.get((method, pattern), ())
        tracked.clear()
        sent = dict(params, **COMPANIONS.get(name, {}), **{name: dummy(tp)})
        status, body = world.request(path, sent)
        error = body.get("error") or {}
        if refused:
            if status != 400 or not _names(error, name):
                problems.append(f"{name}: listed as refused, answered {status} {error}")
        elif status >= 500:
            problems.append(f"{name}: {status} {error.get('message')}")
        elif not (status == 400 and _names(error, name)) and \
                not any(name in t.read for t in tracked):
            problems.append(f"{name}: answered {status} and never read (silently ignored)"
                            + (f" [{error.get('message')}]" if error else ""))
    assert problems == [], f"{method} {pattern}:\n" + "\n".join(problems)


def test_the_refusal_names_the_parameter_and_writes_nothing() -> None:
    world = template().fresh()
    before = len(world.sandbox.store.all("subscription"))
    path, params = world.baseline("/v1/subscriptions")
    name = REFUSED[("POST", "/v1/subscriptions")][0]
    status, body = world.request(path, dict(params, **{name: dummy(str)}))
    assert (status, body["error"]["param"]) == (400, name)
    assert "does not implement" in body["error"]["message"]
    assert len(world.sandbox.store.all("subscription")) == before


def test_the_readme_lists_exactly_the_refused_parameters() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- refused-parameters: start -->")[1].split(
        "<!-- refused-parameters: end -->")[0]
    listed: dict[tuple[str, str], set[str]] = {}
    for row in block.strip().splitlines()[2:]:
        route, names = (cell.strip() for cell in row.strip("|").split("|"))
        method, pattern = route.strip("`").split(" ", 1)
        listed[(method, pattern)] = {n.strip().strip("`") for n in names.split(",")}
    assert listed == {key: set(names) for key, names in REFUSED.items()}
