from __future__ import annotations

import re
from decimal import Decimal

import pytest

from meterbill.domain.money import (
    currency_decimals,
    decimal_str,
    format_cents,
    format_unit_amount,
    parse_amount,
    parse_decimal_cents,
    round_cents,
    to_minor_units,
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
    # Amounts are in the currency's minor unit, which jpy does not have and kwd has 3 of.
    assert format_cents(9900, "jpy") == "JPY 9,900"
    assert format_cents(1500, "kwd") == "KWD 1.500"


@pytest.mark.parametrize("value, currency, minor", [
    (99, "usd", 9900), (99.0, "usd", 9900), (99.5, "usd", 9950), ("99.50", "usd", 9950),
    (Decimal("99.500"), "usd", 9950), (0.29, "usd", 29), (1.15, "usd", 115),
    (9900, "jpy", 9900), (Decimal("1.5"), "kwd", 1500), ("1e2", "usd", 10000),
    ("9999999999.99", "usd", 999_999_999_999),
])
def test_major_amounts_become_exact_minor_units(value: object, currency: str,
                                                minor: int) -> None:
    assert to_minor_units(parse_amount(value), currency) == minor


@pytest.mark.parametrize("value, currency, says", [
    ("99.505", "usd", "more decimal places than USD amounts have (2 decimal places)"),
    ("1.5", "jpy", "no decimal places"),
    # More digits than Decimal's 28-digit context: counted, not rounded away.
    ("1.00000000000000000000000000001", "usd", "more decimal places"),
    ("10000000000", "usd", "more than Stripe accepts"),
    (True, "usd", "must be a number"), (None, "usd", "must be a number"),
    ("NaN", "usd", "finite"), (float("inf"), "usd", "finite"), (-1, "usd", ">= 0"),
    ("abc", "usd", "not a number"),
])
def test_amounts_that_are_not_exact_are_refused(value: object, currency: str,
                                                says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        to_minor_units(parse_amount(value), currency)


def test_currency_decimals_follow_stripe() -> None:
    assert [currency_decimals(c) for c in ("usd", "EUR", "jpy", "krw", "kwd", "bhd")] == [
        2, 2, 0, 0, 3, 3]


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
