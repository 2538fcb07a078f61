"""The one token bucket behind the meter pacer and the webhook endpoint's rate limit."""

from __future__ import annotations

import pytest

from meterbill.adapters.token_bucket import TokenBucket


def test_a_full_bucket_grants_its_burst_then_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3.0, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5)  # one token takes 1/rate seconds
    assert bucket.take(100.25) == pytest.approx(0.25)
    assert bucket.take(100.5) == 0.0


def test_it_never_holds_more_than_its_capacity() -> None:
    bucket = TokenBucket(rate=10.0, capacity=2.0, now=0.0)
    assert bucket.take(0.0) == bucket.take(0.0) == 0.0
    assert [bucket.take(1000.0) for _ in range(3)][-1] > 0.0  # only 2 came back, not 10,000
