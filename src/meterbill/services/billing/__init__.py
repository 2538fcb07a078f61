"""Customers, subscriptions, tenants and the plan catalog in Stripe."""
