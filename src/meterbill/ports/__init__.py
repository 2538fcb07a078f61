"""What services need from the outside world: Protocols, the records they exchange, and the
exceptions that cross them. One module per thing outside:

- `stripe`: the billing gateway (customers, subscriptions, catalog) and the billing portal;
- `meters`: Stripe's Billing Meters, for usage sync and reconciliation;
- `usage_store`: where usage events are kept (DuckDB, ClickHouse);
- `webhooks`: Stripe's signed events and the objects they name, re-read from Stripe;
- `notify`: the outbox's notifier, email templates, mail and alert webhooks;
- `tasks`: the task runner that processes inbox rows later.

Adapters implement these; bootstrap picks which. Ports import `domain` and each other, nothing
else (tests/meterbill/test_layers.py).
"""
