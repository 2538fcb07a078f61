"""Usage: ingestion, sync to Stripe's meters, reconciliation, the usage view, manual reports."""
