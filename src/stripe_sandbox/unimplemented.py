"""The parameters stripe-python declares that the sandbox does not implement, per route.

Each is refused with a 400 naming it, before anything is written, whether or not request
validation is on: a parameter that changes what Stripe does must never be silently ignored.
`tests/sandbox/test_unimplemented_params.py` sends every create and update parameter that
stripe-python's `*Params` types declare and checks that each is either read by its handler or
listed here; the README's list of known gaps is this table.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidRequestError

# (METHOD, route pattern) → the top-level parameters refused there.
REFUSED: dict[tuple[str, str], tuple[str, ...]] = {}

# Subscriptions: discounts, tax, Connect, pauses, thresholds and one-off invoice items are not
# modelled; neither are sources (only payment methods) nor off-session flags.
_SUBSCRIPTION = ("add_invoice_items", "application_fee_percent", "billing_schedules",
                 "billing_thresholds", "default_source", "default_tax_rates", "discounts",
                 "invoice_settings", "off_session", "on_behalf_of",
                 "pause_collection", "pending_invoice_item_interval", "transfer_data")
_ITEM = ("billing_thresholds", "current_trial", "discounts", "plan", "price_data", "tax_rates")
# Invoices: no tax, discounts, Connect, shipping, custom numbering or sources.
_INVOICE = ("account_tax_ids", "application_fee_amount", "default_source", "default_tax_rates",
            "discounts", "effective_at", "issuer", "on_behalf_of", "payment_settings",
            "rendering", "shipping_cost", "shipping_details", "transfer_data")
_CUSTOMER = ("business_name", "cash_balance", "individual_name", "invoice_prefix",
             "next_invoice_sequence", "source", "tax", "validate")
# Payment methods: cards only.
_NON_CARD = ("acss_debit", "affirm", "afterpay_clearpay", "alipay", "alma", "amazon_pay",
             "au_becs_debit", "bacs_debit", "bancontact", "billie", "bizum", "blik", "boleto",
             "cashapp", "crypto", "custom", "customer_balance", "eps", "fpx", "giropay",
             "grabpay", "ideal", "interac_present", "kakao_pay", "klarna", "konbini", "kr_card",
             "link", "mb_way", "mobilepay", "multibanco", "naver_pay", "nz_bank_account", "oxxo",
             "p24", "pay_by_bank", "payco", "paynow", "paypal", "paypay", "payto", "pix",
             "promptpay", "revolut_pay", "samsung_pay", "satispay", "scalapay", "sepa_debit",
             "sequra", "sofort", "sunbit", "swish", "twint", "upi", "us_bank_account",
             "wechat_pay", "zip")

REFUSED.update({
    ("POST", "/v1/customers"): _CUSTOMER + ("tax_id_data",),
    ("POST", "/v1/customers/{customer}"): _CUSTOMER + ("balance", "default_source"),
    ("POST", "/v1/payment_methods"): _NON_CARD + ("customer", "payment_method", "radar_options"),
    ("POST", "/v1/payment_methods/{payment_method}"): ("us_bank_account",),
    ("POST", "/v1/payment_methods/{payment_method}/attach"): ("customer_account",),
    ("POST", "/v1/products"): ("tax_details",),
    ("POST", "/v1/products/{id}"): ("tax_details",),
    ("POST", "/v1/prices"): ("currency_options",),
    ("POST", "/v1/prices/{price}"): ("currency_options",),
    ("POST", "/v1/subscriptions"): _SUBSCRIPTION + ("backdate_start_date", "currency",
                                                     "customer_account"),
    ("POST", "/v1/subscriptions/{subscription_exposed_id}"): _SUBSCRIPTION + (
        "trial_from_plan",),
    ("POST", "/v1/subscription_items"): _ITEM,
    ("POST", "/v1/subscription_items/{item}"): _ITEM + ("off_session",),
    ("POST", "/v1/subscription_schedules"): ("billing_mode", "customer_account"),
    ("POST", "/v1/invoiceitems"): ("customer_account", "discounts", "tax_behavior", "tax_code",
                                   "tax_rates"),
    ("POST", "/v1/invoices"): _INVOICE + ("customer_account", "from_invoice"),
    ("POST", "/v1/invoices/{invoice}"): _INVOICE + ("number",),
    ("POST", "/v1/invoiceitems/{invoiceitem}"): ("discounts", "invoicing_rules", "tax_behavior",
                                                 "tax_code", "tax_rates"),
    ("POST", "/v1/invoices/create_preview"): ("automatic_tax", "currency", "customer_account",
                                              "customer_details", "discounts", "issuer",
                                              "on_behalf_of", "preview_mode"),
    ("POST", "/v1/invoices/{invoice}/pay"): ("forgive", "mandate", "off_session", "source"),
    ("POST", "/v1/test_helpers/test_clocks"): ("customer",),
    ("POST", "/v1/webhook_endpoints"): ("connect",),
    ("POST", "/v1/billing_portal/sessions"): ("after_expiration",),
})


def refuse_unimplemented(method: str, pattern: str, params: dict[str, Any]) -> None:
    for name in REFUSED.get((method, pattern), ()):
        if params.get(name) not in (None, ""):  # `{}` too: a JSON body can send an empty hash
            raise InvalidRequestError(
                f"The sandbox does not implement `{name}` on {method} {pattern}; it refuses "
                "it rather than ignore it (see the sandbox's known gaps in the README).",
                param=name)
