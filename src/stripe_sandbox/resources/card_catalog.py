"""Stripe's documented test cards, test PaymentMethod ids (`pm_card_*`) and tokens (`tok_*`).

Each card says how it behaves: `fails_on="attach"` cards are refused when attached to a customer
(and on any charge), as 4000000000000002 is; `fails_on="charge"` cards attach fine and then every
charge fails, as 4000000000000341 does. `authenticate=True` cards are Stripe's 3-D Secure test
cards (4000002760003184 `pm_card_authenticationRequired`, 4000000000003220
`pm_card_threeDSecure2Required`, 4000000000003063 `pm_card_threeDSecureRequired`): every charge
needs the cardholder to authenticate first, so an automatic charge leaves the payment intent in
`requires_action` until the customer authenticates on the hosted invoice page. A Luhn-valid
number not in the table is refused the way Stripe refuses a live card in test mode.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

DECLINED = "Your card was declined."


@dataclass(frozen=True)
class CardSpec:
    number: str
    brand: str  # the `card.brand` value: visa, mastercard, amex, discover, ...
    funding: str = "credit"
    country: str = "US"
    fails_on: str | None = None  # None, "attach" or "charge"
    code: str = "card_declined"
    decline_code: str = "generic_decline"
    message: str = DECLINED
    authenticate: bool = False  # every charge needs 3-D Secure authentication first

    @property
    def failure(self) -> tuple[str, str, str] | None:
        if self.fails_on is None:
            return None
        return (self.code, self.decline_code, self.message)


def _declined(number: str, decline_code: str, message: str = DECLINED, code: str = "card_declined",
              fails_on: str = "attach") -> CardSpec:
    return CardSpec(number, "visa", fails_on=fails_on, code=code, decline_code=decline_code,
                    message=message)


CARDS: dict[str, CardSpec] = {
    card.number: card
    for card in (
        CardSpec("4242424242424242", "visa"),
        CardSpec("4000056655665556", "visa", funding="debit"),
        CardSpec("5555555555554444", "mastercard"),
        CardSpec("2223003122003222", "mastercard"),
        CardSpec("5200828282828210", "mastercard", funding="debit"),
        CardSpec("5105105105105100", "mastercard", funding="prepaid"),
        CardSpec("378282246310005", "amex"),
        CardSpec("371449635398431", "amex"),
        CardSpec("6011111111111117", "discover"),
        CardSpec("6011000990139424", "discover"),
        CardSpec("3056930009020004", "diners"),
        CardSpec("3566002020360505", "jcb"),
        CardSpec("6200000000000005", "unionpay"),
        CardSpec("4000000760000002", "visa", country="BR"),
        CardSpec("4000001240000000", "visa", country="CA"),
        CardSpec("4000000000000077", "visa"),  # charge succeeds, funds added to balance
        _declined("4000000000000002", "generic_decline"),
        _declined("4000000000009995", "insufficient_funds", "Your card has insufficient funds."),
        _declined("4000000000009987", "lost_card"),
        _declined("4000000000009979", "stolen_card"),
        _declined("4000000000000069", "expired_card", "Your card has expired.",
                  code="expired_card"),
        _declined("4000000000000127", "incorrect_cvc", "Your card's security code is incorrect.",
                  code="incorrect_cvc"),
        _declined("4000000000000119", "processing_error",
                  "An error occurred while processing your card. Try again in a little bit.",
                  code="processing_error"),
        _declined("4000000000006975", "card_velocity_exceeded"),
        _declined("4100000000000019", "fraudulent"),
        _declined("4000000000000341", "generic_decline", fails_on="charge"),
        CardSpec("4000002760003184", "visa", authenticate=True),
        CardSpec("4000000000003220", "visa", authenticate=True),
        CardSpec("4000000000003063", "visa", authenticate=True),
    )
}

# Suffixes of `pm_card_<suffix>` and `tok_<suffix>` → test card number.
TOKENS: dict[str, str] = {
    "visa": "4242424242424242",
    "visa_debit": "4000056655665556",
    "mastercard": "5555555555554444",
    "mastercard_debit": "5200828282828210",
    "mastercard_prepaid": "5105105105105100",
    "amex": "378282246310005",
    "discover": "6011111111111117",
    "diners": "3056930009020004",
    "jcb": "3566002020360505",
    "unionpay": "6200000000000005",
    "br": "4000000760000002",
    "ca": "4000001240000000",
    "bypassPending": "4000000000000077",
    "chargeDeclined": "4000000000000002",
    "visa_chargeDeclined": "4000000000000002",
    "chargeDeclinedInsufficientFunds": "4000000000009995",
    "visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "chargeDeclinedLostCard": "4000000000009987",
    "visa_chargeDeclinedLostCard": "4000000000009987",
    "chargeDeclinedStolenCard": "4000000000009979",
    "visa_chargeDeclinedStolenCard": "4000000000009979",
    "chargeDeclinedExpiredCard": "4000000000000069",
    "chargeDeclinedIncorrectCvc": "4000000000000127",
    "chargeDeclinedProcessingError": "4000000000000119",
    "visa_chargeDeclinedVelocityLimitExceeded": "4000000000006975",
    "radarBlock": "4100000000000019",
    "chargeDeclinedFraudulent": "4100000000000019",
    "visa_chargeDeclinedFraudulent": "4100000000000019",
    "chargeCustomerFail": "4000000000000341",
    "authenticationRequired": "4000002760003184",
    "threeDSecure2Required": "4000000000003220",
    "threeDSecureRequired": "4000000000003063",
}

DISPLAY_BRANDS = {"amex": "american_express"}


def token_card(token: str) -> CardSpec | None:
    """The card behind `pm_card_visa` / `tok_visa`, or None if `token` is not a test token."""
    for prefix in ("pm_card_", "tok_"):
        if token.startswith(prefix):
            number = TOKENS.get(token[len(prefix):])
            return CARDS[number] if number else None
    return None


def luhn_valid(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, char in enumerate(reversed(number)):
        digit = int(char)
        if i % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def fingerprint(number: str) -> str:
    """Stable per card number, as Stripe's fingerprint is (16 characters)."""
    digest = hashlib.sha256(b"stripe-sandbox:" + number.encode()).digest()
    return base64.b64encode(digest).decode().replace("+", "").replace("/", "")[:16]
