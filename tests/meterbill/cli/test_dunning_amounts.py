"""`meterbill dunning process`: `--amount` is in the currency's major unit, as POST
/dunning/process takes it (99.00 = $99.00), parsed exactly; `--amount-cents` says it in cents."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meterbill.bootstrap import Container

from ..conftest import spy_dunning_amounts
from .conftest import Run

TENANT = "test_tenant_001"


@pytest.fixture
def amounts(container: Container, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """A tenant to dun, and what the dunning service is asked with: (cents, currency)."""
    container.customers.ensure_customer(TENANT, "admin@testcompany.com", "Test Company")
    return spy_dunning_amounts(container, monkeypatch)


def _process(cli: Run, *amount: str) -> Any:
    return cli("dunning", "process", "--tenant", TENANT, "--failures", "1", *amount, "--json")


@pytest.mark.parametrize("options, cents, currency", [
    (("--amount", "99.00"), 9900, "usd"),
    (("--amount", "99.5"), 9950, "usd"),
    (("--amount", "0.29"), 29, "usd"),
    (("--amount-cents", "9900"), 9900, "usd"),
    (("--amount", "9900", "--currency", "jpy"), 9900, "jpy"),
])
def test_the_amount_is_in_the_major_unit(cli: Run, amounts: list[tuple[int, str]],
                                         options: tuple[str, ...], cents: int,
                                         currency: str) -> None:
    result = _process(cli, *options)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["to_state"] == "reminder"
    assert amounts == [(cents, currency)]


@pytest.mark.parametrize("options, says", [
    (("--amount", "99.505"), "more decimal places than USD amounts have (2 decimal places)"),
    (("--amount", "1.5", "--currency", "jpy"), "no decimal places"),
    (("--amount", "ninety"), "not a number"),
    (("--amount", "-1"), ">= 0"),
    (("--amount", "99.00", "--amount-cents", "9900"), "not both"),
    ((), "--amount is required"),
])
def test_an_amount_that_is_not_exact_is_refused_before_anything_changes(
        cli: Run, amounts: list[tuple[int, str]], options: tuple[str, ...], says: str) -> None:
    result = _process(cli, *options)
    assert result.exit_code == 1, result.output
    error = json.loads(result.stdout)["error"]
    assert (error["code"], error["field"]) == ("invalid_input", "amount")
    assert says in error["message"]
    assert amounts == []
