from __future__ import annotations

from decimal import Decimal

import pytest

from meterbill.domain.money import (
    decimal_str,
    format_cents,
    format_unit_amount,
    parse_decimal_cents,
    round_cents,
)


@pytest.mark.parametrize("cents, text", [
    (2900, "$29.00"), (49900, "$499.00"), (5, "$0.05"), (0, "$0.00"),
    (123456789, "$1,234,567.89"), (-500, "-$5.00"),
])
def test_format_cents(cents: int, text: str) -> None:
    assert format_cents(cents) == text


def test_format_cents_other_currency() -> None:
    assert format_cents(1000, "eur") == "€10.00"
    assert format_cents(1000, "chf") == "CHF 10.00"


@pytest.mark.parametrize("cents, text", [
    ("0.1", "$0.001"), ("0.08", "$0.0008"), ("0.05", "$0.0005"), ("150", "$1.50"),
    ("100", "$1.00"),
])
def test_format_unit_amount(cents: str, text: str) -> None:
    assert format_unit_amount(Decimal(cents)) == text


def test_parse_decimal_cents_accepts_strings_and_ints() -> None:
    assert parse_decimal_cents("0.1") == Decimal("0.1")
    assert parse_decimal_cents(7) == Decimal(7)


@pytest.mark.parametrize("bad", [0.1, "abc", "-1", "NaN", "Infinity", "0.0000000000001", True])
def test_parse_decimal_cents_refuses_floats_and_nonsense(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_decimal_cents(bad)


def test_decimal_str_is_plain() -> None:
    assert decimal_str(Decimal("0.10")) == "0.1"
    assert decimal_str(Decimal("1E+2")) == "100"
    assert decimal_str(Decimal("0.00000001")) == "0.00000001"


@pytest.mark.parametrize("amount, cents", [("0.5", 1), ("0.49", 0), ("1.5", 2), ("2.5", 3),
                                           ("4000.0", 4000)])
def test_round_cents_half_up(amount: str, cents: int) -> None:
    assert round_cents(Decimal(amount)) == cents
