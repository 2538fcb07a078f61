"""The clock: what every part that reads the time takes, and the real one.

Services take a `Clock` in their constructor (default `utcnow`) so that tests, and Stripe's
test clocks where the code follows them, can set the time; nothing else calls
`datetime.now`. Always timezone-aware UTC: the database columns refuse naive datetimes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)
