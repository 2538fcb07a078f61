"""Every Stripe CLI trigger runs against the sandbox and emits the event it is named for.

A trigger file is a list of requests (`stripe trigger EVENT` sends them in order); `${name:field}`
refers to a field (a dotted path) of the answer to the earlier request called `name`, and
`expected_error_type` says that a request must fail with that error type.
"""

from __future__ import annotations

import json
import re
import time
import typing
from pathlib import Path
from typing import Any

import pytest
import stripe
from stripe.params._webhook_endpoint_create_params import WebhookEndpointCreateParams

from .stripe_reference import TRIGGERS

FILES = sorted(TRIGGERS.glob("*.json"))

# Stripe's event types, as stripe-python lists them for `enabled_events`.
EVENT_TYPES = set(typing.get_args(typing.get_args(
    WebhookEndpointCreateParams.__annotations__["enabled_events"])[0])) - {"*"}
# Trigger names that are not event types themselves: the event the CLI fires for them.
NOT_AN_EVENT = {"subscription.payment_succeeded": "invoice.payment_succeeded"}
_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_]+):([A-Za-z0-9_.\[\]]+)\}")


def expected_events(path: Path) -> list[str]:
    """The file's own event, and the events it is an alias for (`_meta.aliases`)."""
    meta = json.loads(path.read_text()).get("_meta", {})
    return [NOT_AN_EVENT.get(path.stem, path.stem), *meta.get("aliases", [])]


def _field(answer: Any, dotted: str, reference: str) -> Any:
    value = answer
    for part in dotted.split("."):
        if isinstance(value, list) and part.isdigit():
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise AssertionError(f"{reference}: no field {part!r} in {json.dumps(value)[:300]}")
    return value


def resolve(value: Any, answers: dict[str, Any]) -> Any:
    """`value` with every `${name:field}` replaced from the earlier answers."""
    if isinstance(value, dict):
        return {k: resolve(v, answers) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, answers) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, dotted = match.groups()
        if name not in answers:
            raise AssertionError(f"{match.group(0)}: no earlier request named {name!r}")
        return str(_field(answers[name], dotted, match.group(0)))

    return _REFERENCE.sub(substitute, value)


def run_trigger(client: stripe.StripeClient, path: Path) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for step in json.loads(path.read_text())["fixtures"]:
        url = resolve(step["path"], answers)
        params = resolve(step.get("params") or {}, answers)
        expected_error = step.get("expected_error_type")
        where = f"{path.name} step {step['name']} ({step['method'].upper()} {url})"
        try:
            response = client.raw_request(step["method"], url, **params)
        except stripe.StripeError as error:
            body = error.json_body or {}
            kind = (body.get("error") or {}).get("type")
            if expected_error is None or kind != expected_error:
                raise AssertionError(f"{where} failed: {kind}: {error.user_message}") from error
            answers[step["name"]] = body
            continue
        assert expected_error is None, f"{where} succeeded, expected a {expected_error}"
        answers[step["name"]] = json.loads(response.body)
    return answers


def _emitted(client: stripe.StripeClient, event_type: str) -> bool:
    return bool(client.v1.events.list(params={"type": event_type, "limit": 1}).data)


def test_every_expected_event_is_a_stripe_event_type() -> None:
    assert FILES, f"no trigger files under {TRIGGERS}"
    for path in FILES:
        for event_type in expected_events(path):
            assert event_type in EVENT_TYPES, f"{path.name}: {event_type} is not an event type"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_trigger_runs_and_emits_its_event(client: stripe.StripeClient, path: Path) -> None:
    run_trigger(client, path)
    missing = expected_events(path)
    # Some work (a test clock finishing its advance) completes after the last answer; each
    # request lets due work run, so ask a few times before calling the event missing.
    deadline = time.monotonic() + 5
    while missing:
        missing = [t for t in missing if not _emitted(client, t)]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    emitted = sorted({e.type for e in client.v1.events.list(params={"limit": 100}).data})
    assert not missing, f"{path.name} did not emit {missing}; emitted: {emitted}"
