"""meterbill: billing automation for usage-based SaaS on Stripe."""

__version__ = "0.1.0"
