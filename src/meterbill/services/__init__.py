"""Use cases. Each service owns its transaction and talks to Stripe through `ports.StripePort`."""
