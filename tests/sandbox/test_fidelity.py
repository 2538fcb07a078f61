"""Every resource the sandbox serves has Stripe's shape.

For each resource type, every response the scenario collected (see `fidelity_scenario`) must
(a) parse into stripe-python's typed class for its `object`, and (b) carry every key that
Stripe's own example object (`fixtures3.json`) carries, recursively into nested objects and
list items present on both sides, with the same JSON kind (object, list, string, number,
boolean). The examples are older than today's API: keys that Stripe's current types no longer
require are left out of them (`stripe_reference.fixtures`); the full check of every answer
against those types is `test_sdk_schema.py`. A resource whose endpoints do not exist yet fails
with the sandbox's 404.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import stripe
from stripe._object_classes import OBJECT_CLASSES, get_object_class

from stripe_sandbox import Sandbox, SandboxConfig, SandboxHTTPClient

from .fidelity_scenario import RESOURCES, Outcome, run
from .stripe_reference import STRIPE_DATA, fixtures

# Free-form maps: their keys are the caller's, not part of the resource's shape.
FREE_FORM = {"metadata", "payload", "previous_attributes"}
CONTAINERS = {"list", "search_result"}


def stripe_examples() -> dict[str, Any]:
    path = STRIPE_DATA / "fixtures3.json"
    assert path.is_file(), f"Stripe's reference objects are missing: {path}"
    return fixtures()


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, (str, Decimal)):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def shape_problems(expected: dict[str, Any], actual: dict[str, Any], path: str = "") -> list[str]:
    """How `actual` falls short of Stripe's example `expected`: missing keys, wrong kinds."""
    problems: list[str] = []
    for key, want in expected.items():
        here = f"{path}.{key}" if path else key
        if key not in actual:
            problems.append(f"missing key {here}")
        elif key not in FREE_FORM:
            problems.extend(_value_problems(want, actual[key], here))
    return problems


def _value_problems(want: Any, got: Any, here: str) -> list[str]:
    if want is None or got is None:
        return []
    examples = stripe_examples()
    kind = got.get("object") if isinstance(got, dict) else None
    if isinstance(kind, str) and kind in examples and not (
        isinstance(want, dict) and want.get("object") == kind
    ):
        # An expanded id, or an event's `data.object`: compare with that type's own example.
        return shape_problems(examples[kind], got, here)
    if _kind(want) != _kind(got):
        return [f"{here} is a {_kind(got)} ({got!r:.60}); Stripe sends a {_kind(want)}"]
    if isinstance(want, dict):
        return shape_problems(want, got, here)
    if isinstance(want, list) and want and isinstance(want[0], dict):
        return [p for i, item in enumerate(got) for p in _value_problems(want[0], item,
                                                                         f"{here}[{i}]")]
    return []


def typed_problems(resource: str, obj: stripe.StripeObject) -> list[str]:
    """The response parses into stripe-python's class for `resource`, nested objects too."""
    problems: list[str] = []
    expected = get_object_class("V1", resource)
    kind = obj.to_dict(recursive=False).get("object")
    if kind != resource:
        problems.append(f"`object` is {kind!r}, not {resource!r}")
    if not isinstance(obj, expected):
        problems.append(f"parsed as {type(obj).__name__}, not {expected.__qualname__}")

    def walk(value: Any, here: str) -> None:
        if isinstance(value, stripe.StripeObject):
            fields = value.to_dict(recursive=False)  # a StripeObject is not a dict
            kind = fields.get("object")
            if isinstance(kind, str) and kind not in CONTAINERS:
                if kind not in OBJECT_CLASSES:
                    problems.append(f"{here}: stripe-python knows no object {kind!r}")
                elif not isinstance(value, get_object_class("V1", kind)):
                    problems.append(f"{here}: not parsed as {kind!r}")
            for key, item in fields.items():
                if key not in FREE_FORM:
                    walk(item, f"{here}.{key}" if here else key)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{here}[{index}]")

    walk(obj, "")
    return problems


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    client = stripe.StripeClient("sk_test_fidelity", max_network_retries=0,
                                 http_client=SandboxHTTPClient(Sandbox(SandboxConfig())))
    return run(client)


@pytest.mark.parametrize("resource", RESOURCES)
def test_resource_has_stripes_shape(resource: str, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[resource]
    example = stripe_examples()[resource]
    problems = list(outcome.errors)
    for sample in outcome.samples:
        problems += [f"{sample.source}: {p}" for p in typed_problems(resource, sample.obj)]
        actual = sample.obj.to_dict(for_json=True)
        problems += [f"{sample.source}: {p}" for p in shape_problems(example, actual)]
    if not outcome.samples:
        pytest.fail(f"no {resource} was made:\n" + "\n".join(problems), pytrace=False)
    if problems:
        pytest.fail(f"{resource} differs from Stripe's:\n" + "\n".join(problems), pytrace=False)


def test_shape_check_reports_missing_and_mistyped_keys() -> None:
    """The comparison itself: a key left out, a nested key left out, a number sent as text."""
    example = {"id": "x", "amount": 5, "period": {"start": 1, "end": 2}, "metadata": {"a": "b"},
               "lines": {"data": [{"id": "il", "amount": 1}]}}
    actual = {"id": "y", "amount": "5", "period": {"start": 1}, "metadata": {},
              "lines": {"data": [{"id": "il"}]}}
    assert shape_problems(example, actual) == [
        "amount is a string ('5'); Stripe sends a number",
        "missing key period.end",
        "missing key lines.data[0].amount",
    ]
    assert shape_problems(example, dict(example, period=None)) == []


def test_typed_check_reports_objects_stripe_python_cannot_parse() -> None:
    from stripe._util import convert_to_stripe_object

    obj = convert_to_stripe_object({"id": "cus_1", "object": "customer",
                                    "items": {"object": "lst"}, "metadata": {"object": "x"}})
    assert typed_problems("subscription", obj) == [
        "`object` is 'customer', not 'subscription'",
        "parsed as Customer, not Subscription",
        "items: stripe-python knows no object 'lst'",
    ]
    assert typed_problems("customer", obj) == ["items: stripe-python knows no object 'lst'"]
