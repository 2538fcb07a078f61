"""The Stripe gateway: `ports.stripe.StripePort` over one `stripe.StripeClient`.

The client is built in `bootstrap/` (API version pinned, network retries set) and passed in;
nothing here touches module-level `stripe` state. Every write carries the caller's idempotency
key. Stripe's exceptions leave this module only as `meterbill.domain.errors` types, each with
Stripe's request id.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import stripe
from stripe.params import (
    CustomerCreateParams,
    PriceCreateParams,
    PriceCreateParamsRecurring,
    ProductCreateParams,
    ProductUpdateParams,
    SubscriptionCreateParams,
    SubscriptionCreateParamsItem,
    SubscriptionUpdateParams,
)
from stripe.params.billing import MeterCreateParams

from ..domain.errors import (
    Conflict,
    MeterbillError,
    StripeCardError,
    StripeFailure,
    StripeInvalidRequest,
    StripeNotFound,
    StripeUnavailable,
)
from ..domain.money import decimal_str
from ..domain.plans import MeterDefinition, PriceDefinition
from ..ports.stripe import (
    CustomerRecord,
    ListedSubscription,
    MeterRecord,
    PaymentRecord,
    PriceRecord,
    ProductRecord,
    SubscriptionRecord,
)
from . import stripe_records as records

API_VERSION = "2026-10-28.endive"
# Stripe accepts at most 10 lookup keys per price list request.
_LOOKUP_KEYS_PER_REQUEST = 10


@contextmanager
def stripe_errors(action: str) -> Iterator[None]:
    """Translate stripe-python exceptions raised inside the block into our error types."""
    try:
        yield
    except stripe.StripeError as error:
        raise translate(error, action) from error


def translate(error: stripe.StripeError, action: str) -> MeterbillError:
    request_id = error.request_id
    code = getattr(error, "code", None)
    text = error.user_message or _message(error)
    if isinstance(error, stripe.CardError):
        decline = getattr(error, "decline_code", None)
        return StripeCardError(f"The card was declined while trying to {action}: {text}",
                               request_id=request_id, stripe_code=decline or code)
    if isinstance(error, stripe.RateLimitError):
        return StripeUnavailable(f"Stripe is rate limiting requests; could not {action}. "
                                 "Retry shortly.", request_id=request_id, stripe_code=code)
    if isinstance(error, stripe.APIConnectionError):
        return StripeUnavailable(f"Could not reach Stripe to {action}: {text}",
                                 request_id=request_id)
    if isinstance(error, stripe.IdempotencyError):
        return Conflict(f"Stripe refused to {action}: the same request is already in progress "
                        f"with different parameters ({text})",
                        code="idempotency_conflict", details={"stripe_request_id": request_id})
    if isinstance(error, stripe.InvalidRequestError):
        param = getattr(error, "param", None)
        failure_type = StripeNotFound if (error.http_status == 404 or code ==
                                          "resource_missing") else StripeInvalidRequest
        failure = failure_type(f"Stripe rejected the request to {action}: {text}",
                               request_id=request_id, stripe_code=code)
        if param:
            failure.details["stripe_param"] = param
        return failure
    if isinstance(error, stripe.AuthenticationError):
        return StripeFailure(f"Stripe rejected the API key while trying to {action}; check "
                             "STRIPE_SECRET_KEY.", request_id=request_id,
                             code="stripe_authentication")
    if isinstance(error, stripe.APIError) and (error.http_status or 500) >= 500:
        return StripeUnavailable(f"Stripe failed while trying to {action}: {text}",
                                 request_id=request_id, stripe_code=code)
    return StripeFailure(f"Stripe failed while trying to {action}: {text}",
                         request_id=request_id, stripe_code=code)


def _message(error: stripe.StripeError) -> str:
    return error._message or type(error).__name__  # the text without "Request req_...: "


def _data(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _ref(value: Any) -> str:
    return value if isinstance(value, str) else str(value.id)


def _opts(idempotency_key: str) -> Any:
    return {"idempotency_key": idempotency_key}


class StripeGateway:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    def get_json(self, path: str, object_id: str, **params: Any) -> dict[str, Any]:
        """GET `{path}/{object_id}` as Stripe's JSON, parsed into plain dicts.

        For reads on hot paths (every webhook re-reads an invoice and a subscription): building
        stripe-python's `StripeObject` tree for an invoice costs more CPU than the request
        itself, and the records below read dicts anyway. Errors are stripe-python's own, raised
        by the same requestor (retries, API version and error mapping unchanged)."""
        response = self.client.raw_request("get", f"{path}/{quote(object_id, safe='')}",
                                           **params)
        data = response.data
        if not isinstance(data, dict):
            raise StripeFailure(f"Stripe answered GET {path}/{object_id} with no JSON object",
                                request_id=response.request_id)
        return data

    def ping(self) -> None:
        with stripe_errors("check the Stripe connection"):
            self.client.v1.customers.list(params={"limit": 1})

    def subscription_pages(self, page_size: int = 100) -> Iterator[list[ListedSubscription]]:
        """Stripe's subscriptions of every status, a page a call, customers expanded: a
        reconciliation reads N subscriptions in ceil(N/100) calls."""
        after: str | None = None
        while True:
            params: dict[str, Any] = {"status": "all", "limit": page_size,
                                      "expand": ["data.customer"]}
            if after is not None:
                params["starting_after"] = after
            with stripe_errors("list subscriptions"):
                data = self.client.raw_request("get", "/v1/subscriptions", **params).data
            page = [records.listed_subscription(item) for item in data.get("data") or []]
            yield page
            if not data.get("has_more") or not page:
                return
            after = page[-1].record.id

    # --- customers and payment methods -------------------------------------------------------

    def search_customer_by_tenant(self, tenant_id: str) -> CustomerRecord | None:
        escaped = tenant_id.replace("\\", "\\\\").replace("'", "\\'")
        with stripe_errors("search customers"):
            page = self.client.v1.customers.search(
                params={"query": f"metadata['tenant_id']:'{escaped}'", "limit": 10}
            )
        found = [records.customer(_data(c)) for c in page.data]
        # Oldest first: if twins ever existed, the first one is the tenant's customer.
        found.sort(key=lambda c: c.id)
        matching = [c for c in found if c.metadata.get("tenant_id") == tenant_id]
        return matching[0] if matching else None

    def create_customer(self, *, tenant_id: str, email: str, name: str | None,
                        idempotency_key: str,
                        test_clock: str | None = None) -> CustomerRecord:
        params: CustomerCreateParams = {"email": email, "metadata": {"tenant_id": tenant_id}}
        if name:
            params["name"] = name
        if test_clock:
            params["test_clock"] = test_clock
        with stripe_errors("create the customer"):
            obj = self.client.v1.customers.create(params=params, options=_opts(idempotency_key))
        return records.customer(_data(obj))

    def retrieve_customer(self, customer_id: str) -> CustomerRecord:
        with stripe_errors(f"retrieve customer {customer_id}"):
            data = self.get_json("/v1/customers", customer_id)
        if data.get("deleted"):
            raise StripeNotFound(f"Customer {customer_id} was deleted in Stripe",
                                 stripe_code="resource_missing")
        return records.customer(data)

    def attach_payment_method(self, payment_method_id: str, customer_id: str, *,
                              idempotency_key: str) -> str:
        with stripe_errors(f"attach payment method {payment_method_id}"):
            obj = self.client.v1.payment_methods.attach(
                payment_method_id, params={"customer": customer_id},
                options=_opts(idempotency_key),
            )
        return str(obj.id)

    def set_default_payment_method(self, customer_id: str, payment_method_id: str, *,
                                   idempotency_key: str) -> CustomerRecord:
        with stripe_errors("set the customer's default payment method"):
            obj = self.client.v1.customers.update(
                customer_id,
                params={"invoice_settings": {"default_payment_method": payment_method_id}},
                options=_opts(idempotency_key),
            )
        return records.customer(_data(obj))

    def list_payment_method_ids(self, customer_id: str, *, limit: int = 1) -> list[str]:
        with stripe_errors("list the customer's payment methods"):
            page = self.client.v1.customers.payment_methods.list(
                customer_id, params={"limit": limit}
            )
        return [pm.id for pm in page.data]

    # --- subscriptions -----------------------------------------------------------------------

    def create_subscription(self, *, customer_id: str, price_ids: Sequence[str],
                            trial_days: int, default_payment_method: str | None,
                            metadata: Mapping[str, str],
                            idempotency_key: str,
                            days_until_due: int | None = None) -> SubscriptionRecord:
        """`days_until_due` set: invoices are emailed (`collection_method=send_invoice`) with
        that many days to pay, never charged; None: charged automatically."""
        base, *metered = price_ids
        # Metered items take no quantity; the meter's usage decides what they bill.
        items: list[SubscriptionCreateParamsItem] = [{"price": base, "quantity": 1}]
        items += [{"price": p} for p in metered]
        params: SubscriptionCreateParams = {
            "customer": customer_id,
            "items": items,
            # Charge the first invoice now, server-side: `allow_incomplete` attempts the
            # payment at once and leaves the subscription `incomplete` when it is declined or
            # needs the customer's authentication (3-D Secure). `default_incomplete` would wait
            # for a browser to confirm the payment intent, which meterbill does not have, and
            # `error_if_incomplete` answers 402 for authentication too, leaving no invoice page
            # for the customer to authenticate on. The caller reads the outcome
            # (`invoice_payment`) and cancels a declined subscription.
            "payment_behavior": "allow_incomplete",
            "payment_settings": {"save_default_payment_method": "on_subscription"},
            "metadata": dict(metadata),
        }
        if trial_days > 0:
            params["trial_period_days"] = trial_days
        if default_payment_method:
            params["default_payment_method"] = default_payment_method
        if days_until_due is not None:
            params["collection_method"] = "send_invoice"
            params["days_until_due"] = days_until_due
        with stripe_errors("create the subscription"):
            obj = self.client.v1.subscriptions.create(params=params,
                                                      options=_opts(idempotency_key))
        return records.subscription(_data(obj))

    def retrieve_subscription(self, subscription_id: str) -> SubscriptionRecord:
        with stripe_errors(f"retrieve subscription {subscription_id}"):
            return records.subscription(self.get_json("/v1/subscriptions", subscription_id))

    def set_cancel_at_period_end(self, subscription_id: str, value: bool, *,
                                 idempotency_key: str) -> SubscriptionRecord:
        action = "schedule the cancellation" if value else "resume the subscription"
        with stripe_errors(action):
            obj = self.client.v1.subscriptions.update(
                subscription_id, params={"cancel_at_period_end": value},
                options=_opts(idempotency_key),
            )
        return records.subscription(_data(obj))

    def cancel_subscription(self, subscription_id: str, *,
                            idempotency_key: str | None = None) -> SubscriptionRecord:
        # Canceling twice is refused, not repeated; a key makes a retried cancel answer as the
        # first one did (the create path's undo is retried with the create).
        with stripe_errors("cancel the subscription"):
            obj = self.client.v1.subscriptions.cancel(
                subscription_id,
                options=_opts(idempotency_key) if idempotency_key else None)
        return records.subscription(_data(obj))

    def invoice_payment(self, invoice_id: str) -> PaymentRecord:
        # Since API 2025-03-31 an invoice names its payment intents under `payments`.
        with stripe_errors(f"retrieve the payment of invoice {invoice_id}"):
            data = self.get_json("/v1/invoices", invoice_id,
                                 expand=["payments.data.payment.payment_intent"])
        payments = (data.get("payments") or {}).get("data") or []
        intent: dict[str, Any] = {}
        for payment in sorted(payments, key=lambda p: not p.get("is_default")):
            found = (payment.get("payment") or {}).get("payment_intent")
            if isinstance(found, dict):
                intent = found
                break
        error = intent.get("last_payment_error") or {}
        return PaymentRecord(
            invoice_id=data["id"], invoice_status=data.get("status") or "draft",
            intent_status=intent.get("status"), decline_code=error.get("decline_code"),
            error_code=error.get("code"), message=error.get("message"),
            hosted_invoice_url=data.get("hosted_invoice_url"))

    def change_subscription_prices(self, subscription_id: str, item_prices: Mapping[str, str],
                                   *, proration_behavior: str, metadata: Mapping[str, str],
                                   idempotency_key: str) -> SubscriptionRecord:
        params: SubscriptionUpdateParams = {
            "items": [{"id": item, "price": price} for item, price in item_prices.items()],
            "proration_behavior": proration_behavior,
            "metadata": dict(metadata),
        }
        with stripe_errors("change the subscription's plan"):
            obj = self.client.v1.subscriptions.update(subscription_id, params=params,
                                                      options=_opts(idempotency_key))
        return records.subscription(_data(obj))

    def schedule_next_phase(self, subscription_id: str, next_price_ids: Sequence[str], *,
                            idempotency_key: str) -> str:
        with stripe_errors("schedule the plan change"):
            schedule = self.client.v1.subscription_schedules.create(
                params={"from_subscription": subscription_id},
                options=_opts(f"{idempotency_key}:create"))
            current = schedule.phases[0]
            # Stripe leaves `quantity` out of metered items (not null): read it as optional.
            keep: list[Any] = [
                {"price": _ref(item.price), **({"quantity": getattr(item, "quantity", None)}
                                               if getattr(item, "quantity", None) else {})}
                for item in current["items"]]
            base, *metered = next_price_ids
            following: list[Any] = [{"price": base, "quantity": 1}]
            following += [{"price": p} for p in metered]
            self.client.v1.subscription_schedules.update(schedule.id, params={
                "end_behavior": "release",
                "phases": [
                    {"items": keep, "start_date": current.start_date,
                     "end_date": current.end_date},
                    {"items": following, "proration_behavior": "none"},
                ]}, options=_opts(f"{idempotency_key}:phases"))
        return str(schedule.id)

    def release_schedule(self, schedule_id: str, *, idempotency_key: str) -> None:
        with stripe_errors("release the subscription schedule"):
            self.client.v1.subscription_schedules.release(schedule_id,
                                                          options=_opts(idempotency_key))

    # --- catalog -----------------------------------------------------------------------------

    def prices_by_lookup_key(self, lookup_keys: Sequence[str]) -> dict[str, PriceRecord]:
        found: dict[str, PriceRecord] = {}
        keys = list(dict.fromkeys(lookup_keys))
        for start in range(0, len(keys), _LOOKUP_KEYS_PER_REQUEST):
            chunk = keys[start:start + _LOOKUP_KEYS_PER_REQUEST]
            with stripe_errors("look up prices"):
                page = self.client.v1.prices.list(
                    params={"lookup_keys": chunk, "expand": ["data.tiers"], "limit": 100}
                )
            for obj in page.data:
                record = records.price(_data(obj))
                if record.lookup_key:
                    found[record.lookup_key] = record
        return found

    def list_meters(self) -> list[MeterRecord]:
        with stripe_errors("list billing meters"):
            page = self.client.v1.billing.meters.list(params={"limit": 100})
            return [records.meter(_data(m)) for m in page.auto_paging_iter()]

    def create_meter(self, meter: MeterDefinition, *, idempotency_key: str) -> MeterRecord:
        params: MeterCreateParams = {
            "display_name": meter.display_name,
            "event_name": meter.event_name,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
            "value_settings": {"event_payload_key": meter.value_key},
        }
        with stripe_errors(f"create the billing meter {meter.event_name!r}"):
            obj = self.client.v1.billing.meters.create(params=params,
                                                       options=_opts(idempotency_key))
        return records.meter(_data(obj))

    def update_meter(self, meter_id: str, display_name: str, *,
                     idempotency_key: str) -> MeterRecord:
        with stripe_errors(f"update billing meter {meter_id}"):
            obj = self.client.v1.billing.meters.update(
                meter_id, params={"display_name": display_name},
                options=_opts(idempotency_key),
            )
        return records.meter(_data(obj))

    def list_products(self) -> list[ProductRecord]:
        with stripe_errors("list products"):
            page = self.client.v1.products.list(params={"limit": 100})
            return [records.product(_data(p)) for p in page.auto_paging_iter()]

    def create_product(self, *, name: str, description: str | None,
                       metadata: Mapping[str, str], idempotency_key: str) -> ProductRecord:
        params: ProductCreateParams = {"name": name, "metadata": dict(metadata)}
        if description:
            params["description"] = description
        with stripe_errors(f"create product {name!r}"):
            obj = self.client.v1.products.create(params=params, options=_opts(idempotency_key))
        return records.product(_data(obj))

    def update_product(self, product_id: str, *, name: str, description: str | None,
                       metadata: Mapping[str, str], idempotency_key: str) -> ProductRecord:
        params: ProductUpdateParams = {"name": name, "metadata": dict(metadata),
                                  "description": description or ""}
        with stripe_errors(f"update product {product_id}"):
            obj = self.client.v1.products.update(product_id, params=params,
                                                 options=_opts(idempotency_key))
        return records.product(_data(obj))

    def create_price(self, definition: PriceDefinition, *, product_id: str,
                     meter_id: str | None, transfer_lookup_key: bool,
                     idempotency_key: str) -> PriceRecord:
        params = price_params(definition, product_id=product_id, meter_id=meter_id)
        if transfer_lookup_key:
            params["transfer_lookup_key"] = True
        with stripe_errors(f"create price {definition.lookup_key}"):
            obj = self.client.v1.prices.create(params=params, options=_opts(idempotency_key))
        return records.price(_data(obj))


def price_params(definition: PriceDefinition, *, product_id: str,
                 meter_id: str | None) -> PriceCreateParams:
    """Stripe's create-price parameters for one catalog price (see domain/plans.py)."""
    recurring: PriceCreateParamsRecurring = {"interval": definition.interval,
                                             "usage_type": definition.usage_type}
    params: PriceCreateParams = {
        "currency": definition.currency,
        "product": product_id,
        "lookup_key": definition.lookup_key,
        "metadata": {"meterbill_plan": definition.plan_key},
        "recurring": recurring,
    }
    if definition.usage_type == "licensed":
        params["unit_amount"] = definition.unit_amount or 0
        return params
    if meter_id:
        recurring["meter"] = meter_id
    # A plain decimal (never "1E+2"): Stripe reads unit_amount_decimal as written.
    overage = Decimal(decimal_str(definition.overage_unit_amount or Decimal(0)))
    if definition.included_quantity > 0:
        params["billing_scheme"] = "tiered"
        params["tiers_mode"] = "graduated"
        params["tiers"] = [
            {"up_to": definition.included_quantity, "unit_amount": 0},
            {"up_to": "inf", "unit_amount_decimal": overage},
        ]
    else:  # nothing included: a plain per-unit price (a tier up to 0 is not allowed)
        params["unit_amount_decimal"] = overage
    return params
