"""Names the dead-code check (vulture, `make lint`) cannot see used: read by the database,
by pydantic or by a reader of the API's JSON rather than by meterbill's own code.

A name belongs here only when something outside Python's call graph uses it; anything else
vulture reports is deleted.
"""

# Columns kept for people and for SQL: when a row last changed, which base price it had.
updated_at  # noqa
base_price_id  # noqa
# Settings and answers that exist for their readers: the publishable key (check-config shows
# it), the Stripe request id of an error answer, when a usage view was computed.
stripe_publishable_key  # noqa
stripe_request_id  # noqa
as_of  # noqa
# Read by API clients in a subscription's JSON: its trial will end with nothing to charge.
trialing_without_payment_method  # noqa
# Read by the console's and the billing page's Jinja2 templates (templates/console, billing).
invoices_problem  # noqa
portal_url  # noqa
statement_url  # noqa
median_ms  # noqa
mrr  # noqa
revenue_month  # noqa
has_next  # noqa
