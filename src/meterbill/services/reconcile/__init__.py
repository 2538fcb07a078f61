"""Proof that meterbill and Stripe agree: subscription reconciliation."""
