"""Money and calendar maths of the sandbox, checked against figures worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from stripe_sandbox import billing_math as bm
from stripe_sandbox import schedule


def ts(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("exact", "cents"),
    [("0.5", 1), ("1.49", 1), ("2.5", 3), ("-0.5", -1), ("-2.5", -3), ("1933.3333", 1933),
     ("0.4999", 0)],
)
def test_to_cents_rounds_half_away_from_zero(exact: str, cents: int) -> None:
    assert bm.to_cents(Decimal(exact)) == cents


OVERAGE = {  # the mission's Pro overage: 100,000 queries included, then 0.08 cent each
    "billing_scheme": "tiered", "tiers_mode": "graduated",
    "_tiers": [{"up_to": 100000, "unit_amount": 0, "unit_amount_decimal": "0",
                "flat_amount": None, "flat_amount_decimal": None},
               {"up_to": None, "unit_amount": None, "unit_amount_decimal": "0.08",
                "flat_amount": None, "flat_amount_decimal": None}],
}


@pytest.mark.parametrize(
    ("quantity", "cents"),
    [(0, 0), (100000, 0), (100001, 0), (100006, 0), (100007, 1), (125000, 2000),
     (1100000, 80000)],
)
def test_graduated_tiers_with_a_free_first_tier(quantity: int, cents: int) -> None:
    assert bm.line_amount(OVERAGE, quantity) == cents


def test_graduated_tiers_sum_exactly_before_rounding_once() -> None:
    # 3 units at 0.3 = 0.9 and 2 at 0.3 = 0.6: rounding each tier would give 1 + 1 = 2.
    price = {"billing_scheme": "tiered", "tiers_mode": "graduated",
             "_tiers": [{"up_to": 3, "unit_amount_decimal": "0.3"},
                        {"up_to": None, "unit_amount_decimal": "0.3"}]}
    assert bm.exact_amount(price, 5) == Decimal("1.5")
    assert bm.line_amount(price, 5) == 2
    assert bm.line_amount(price, 4) == 1  # 1.2


def test_graduated_flat_amounts_apply_to_each_tier_reached() -> None:
    price = {"billing_scheme": "tiered", "tiers_mode": "graduated",
             "_tiers": [{"up_to": 10, "unit_amount": 100, "flat_amount": 500},
                        {"up_to": None, "unit_amount": 50, "flat_amount": 200}]}
    assert bm.line_amount(price, 15) == 10 * 100 + 500 + 5 * 50 + 200
    assert bm.line_amount(price, 10) == 1500  # the second tier is not reached
    assert bm.line_amount(price, 0) == 0


def test_volume_tiers_price_every_unit_by_the_tier_reached() -> None:
    price = {"billing_scheme": "tiered", "tiers_mode": "volume",
             "_tiers": [{"up_to": 10, "unit_amount": 100},
                        {"up_to": None, "unit_amount_decimal": "80.5", "flat_amount": 100}]}
    assert bm.line_amount(price, 10) == 1000
    assert bm.line_amount(price, 11) == 986  # 11 × 80.5 + 100 = 985.5, half up
    assert bm.line_amount(price, 0) == 0


def test_per_unit_with_decimal_amount_and_quantity_transform() -> None:
    price = {"billing_scheme": "per_unit", "unit_amount": None, "unit_amount_decimal": "0.125"}
    assert bm.line_amount(price, 4) == 1  # 0.5 → 1
    assert bm.line_amount(price, 3) == 0  # 0.375
    packs = {"billing_scheme": "per_unit", "unit_amount": 500, "unit_amount_decimal": "500",
             "transform_quantity": {"divide_by": 1000, "round": "up"}}
    assert bm.line_amount(packs, 1001) == 1000  # two packs
    packs["transform_quantity"]["round"] = "down"
    assert bm.line_amount(packs, 1999) == 500


def test_proration_is_by_the_second_and_rounded_per_line() -> None:
    start, end = ts(2026, 1, 1), ts(2026, 2, 1)  # 31 days = 2,678,400 s
    at = ts(2026, 1, 11, 7)  # 10 days 7 hours in: 1,789,200 s remain
    assert bm.proration_fraction(start, end, at, end) == Decimal(1789200) / Decimal(2678400)
    # 2900 × 1,789,200 / 2,678,400 = 1937.231... ; 9900 × ... = 6613.306...
    assert bm.prorated_amount(2900, start, end, at, end) == 1937
    assert bm.prorated_amount(9900, start, end, at, end) == 6613
    assert bm.prorated_amount(1001, 0, 100, 50, 100) == 501  # 500.5 half up
    assert bm.prorated_amount(Decimal("0.4"), 0, 100, 0, 100) == 0
    assert bm.proration_fraction(start, end, end, end) == 0


@pytest.mark.parametrize(
    ("lines", "balance", "due", "ending"),
    [([500], 0, 500, 0), ([500], -700, 0, -200), ([500], -300, 200, 0),
     ([-1937, 6613], 0, 4676, 0), ([1937, -6613], 0, 0, -4676), ([100], 250, 350, 0)],
)
def test_invoice_totals_apply_the_customer_balance(lines: list[int], balance: int, due: int,
                                                   ending: int) -> None:
    totals = bm.invoice_totals(lines, balance)
    assert totals["total"] == sum(lines)
    assert (totals["amount_due"], totals["ending_balance"]) == (due, ending)


def test_format_money() -> None:
    assert bm.format_money(9900) == "$99.00"
    assert bm.format_money(-550) == "-$5.50"
    assert bm.format_money(Decimal("0.08")) == "$0.0008"
    assert bm.format_money(1234567, "eur") == "€12,345.67"
    assert bm.format_money(100, "jpy") == "1.00 JPY"


def test_monthly_boundaries_clamp_to_month_end_and_come_back() -> None:
    anchor = ts(2026, 1, 31, 12)
    assert schedule.boundary(anchor, "month", 1, 1) == ts(2026, 2, 28, 12)
    assert schedule.boundary(anchor, "month", 1, 2) == ts(2026, 3, 31, 12)
    assert schedule.boundary(anchor, "month", 3, 1) == ts(2026, 4, 30, 12)
    assert schedule.boundary(ts(2024, 2, 29), "year", 1, 1) == ts(2025, 2, 28)
    assert schedule.boundary(anchor, "month", 1, -1) == ts(2025, 12, 31, 12)
    assert schedule.boundary(anchor, "week", 2, 1) == anchor + 14 * 86400


def test_next_boundary_is_strictly_after() -> None:
    anchor = ts(2026, 1, 31)
    assert schedule.next_boundary(anchor, "month", 1, ts(2026, 2, 28)) == ts(2026, 3, 31)
    assert schedule.next_boundary(anchor, "month", 1, ts(2026, 2, 27)) == ts(2026, 2, 28)
    assert schedule.next_boundary(anchor, "month", 1, ts(2027, 6, 1)) == ts(2027, 6, 30)
    assert schedule.next_boundary(anchor, "day", 1, anchor) == anchor + 86400
    assert schedule.format_day(ts(2017, 3, 3)) == "03 Mar 2017"
