"""Money as integer cents, and `Decimal` cents for sub-cent unit prices. Never float.

Amounts people type (99.00 = $99.00) become integer minor units exactly (`parse_amount`,
`to_minor_units`), with as many decimals as the currency has.

Stripe speaks the same units: `unit_amount` is an integer in the currency's minor unit and
`unit_amount_decimal` a decimal string of minor units (`"0.1"` cent = $0.001).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}
# Stripe accepts at most 12 decimal places in `unit_amount_decimal`.
MAX_DECIMAL_PLACES = 12
# Stripe's currencies without a minor unit and those with three decimals (its "zero-decimal"
# and "three-decimal" lists); every other currency has two.
ZERO_DECIMAL_CURRENCIES = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
                                     "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"})
THREE_DECIMAL_CURRENCIES = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
# Stripe's largest amount: twelve digits in the minor unit (for IDR; eight for USD).
MAX_MINOR_AMOUNT = 999_999_999_999


def currency_decimals(currency: str) -> int:
    """How many decimal places amounts in `currency` have: 2 for usd, 0 for jpy, 3 for kwd."""
    code = currency.lower()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    return 3 if code in THREE_DECIMAL_CURRENCIES else 2


def parse_amount(value: object, *, what: str = "amount") -> Decimal:
    """An exact non-negative Decimal in the currency's major unit (99.00 = $99.00).

    Takes an int, a Decimal (JSON decoded with `parse_float=Decimal`), a decimal string, or a
    float read back from its shortest repr (99.1 -> Decimal("99.1"), never 99.0999...).
    Booleans are refused although Python counts them as ints.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"{what} must be a number such as 99.00, not {type(value).__name__}")
    text = repr(value) if isinstance(value, float) else str(value).strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{what} is not a number: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{what} must be a finite amount >= 0, got {value!r}")
    return amount


def to_minor_units(amount: Decimal, currency: str, *, what: str = "amount") -> int:
    """`Decimal("99.5")` usd -> 9950, exactly; ValueError when the currency has fewer
    decimals than the amount (99.505 usd, 1.5 jpy) or the amount exceeds Stripe's largest."""
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{what} must be a finite amount >= 0, got {amount}")
    decimals = currency_decimals(currency)
    code = currency.upper()
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite
    # Decimal places that carry a digit: 99.500 has one. Counted on the digits, not with
    # normalize(), which rounds to the context's 28 digits.
    places, trailing = max(0, -exponent), list(digits)
    while places and trailing and trailing[-1] == 0:
        trailing.pop()
        places -= 1
    if places > decimals:
        allowed = "no decimal places" if decimals == 0 else f"{decimals} decimal places"
        raise ValueError(f"{what} {amount} has more decimal places than {code} amounts have "
                         f"({allowed})")
    if amount * 10 ** decimals > MAX_MINOR_AMOUNT:
        raise ValueError(f"{what} {amount} {code} is more than Stripe accepts (at most "
                         f"{len(str(MAX_MINOR_AMOUNT))} digits in the currency's minor unit)")
    return int(amount.scaleb(decimals))


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
    """`2900` -> `$29.00`; negative amounts as `-$5.00`; `2900` jpy -> `JPY 2,900`."""
    symbol = _SYMBOLS.get(currency.lower(), currency.upper() + " ")
    sign = "-" if cents < 0 else ""
    decimals = currency_decimals(currency)
    whole, part = divmod(abs(cents), 10 ** decimals)
    fraction = f".{part:0{decimals}d}" if decimals else ""
    return f"{sign}{symbol}{whole:,}{fraction}"


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
