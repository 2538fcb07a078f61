"""Money as integer cents, and `Decimal` cents for sub-cent unit prices. Never float.

Stripe speaks the same units: `unit_amount` is an integer in the currency's minor unit and
`unit_amount_decimal` a decimal string of minor units (`"0.1"` cent = $0.001).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}
# Stripe accepts at most 12 decimal places in `unit_amount_decimal`.
MAX_DECIMAL_PLACES = 12


def parse_decimal_cents(value: object, *, what: str = "amount") -> Decimal:
    """A non-negative Decimal of cents from a string or int (floats are refused: inexact)."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(
            f"{what} must be a string such as \"0.1\" or an integer number of cents, "
            f"not {type(value).__name__}"
        )
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{what} is not a number: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{what} must be a finite number of cents >= 0, got {value!r}")
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMAL_PLACES:
        raise ValueError(f"{what} has more than {MAX_DECIMAL_PLACES} decimal places: {value!r}")
    return amount


def decimal_str(amount: Decimal) -> str:
    """Cents as Stripe's `unit_amount_decimal` string: no exponent, no trailing zeros."""
    text = format(amount.normalize(), "f")
    return text


def round_cents(amount: Decimal) -> int:
    """Round a Decimal of cents to whole cents, half up (as Stripe rounds line amounts)."""
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_cents(cents: int, currency: str = "usd") -> str:
    """`2900` -> `$29.00`; negative amounts as `-$5.00`."""
    symbol = _SYMBOLS.get(currency.lower(), currency.upper() + " ")
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{symbol}{whole:,}.{part:02d}"


def format_unit_amount(cents: Decimal, currency: str = "usd") -> str:
    """A sub-cent unit price in currency units: `Decimal("0.1")` cents -> `$0.001`."""
    symbol = _SYMBOLS.get(currency.lower(), currency.upper() + " ")
    units = (cents / 100).normalize()
    text = format(units, "f")
    if "." not in text:
        text += ".00"
    elif len(text.split(".")[1]) < 2:
        text += "0"
    return f"{symbol}{text}"
