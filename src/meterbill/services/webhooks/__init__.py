"""Stripe webhooks: verified and stored by `intake`, processed by `processor` through the
handler table in `handlers`, swept by `sweep`, operated by `admin`.

Wiring lives in `meterbill.bootstrap.webhooks` (bootstrap's part for webhooks).
"""
