"""A token bucket: `rate` tokens a second, holding at most `capacity`. Both of meterbill's
limits are one: the pace of calls to Stripe's meters (adapters/stripe_meters.py) and the
per-address limit of the webhook endpoint (entrypoints/api/webhooks.py). Not thread-safe:
callers hold their own lock. Times are a monotonic clock's seconds."""

from __future__ import annotations


class TokenBucket:
    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity  # a new bucket is full: a first burst goes through
        self.stamp = now

    def take(self, now: float) -> float:
        """Take one token: 0.0 when granted, else the seconds until one is there."""
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0 - 1e-9:  # a float hair short of a token is one
            self.tokens = max(0.0, self.tokens - 1.0)
            return 0.0
        return (1.0 - self.tokens) / self.rate
