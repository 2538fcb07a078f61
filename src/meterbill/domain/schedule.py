"""When a periodic job runs next: every N seconds, or daily at a UTC time of day.

Pure: the inline scheduler asks `next_after(now)`; Celery beat gets the same schedule through
`bootstrap/jobs.py`, so both read one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from .errors import InvalidInput


@dataclass(frozen=True)
class Every:
    """Every `seconds`, the first run `first_delay` seconds after the scheduler starts."""

    seconds: float
    first_delay: float = 0.0

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise InvalidInput("a job's interval must be positive", field="seconds")

    def first_run(self, started: datetime) -> datetime:
        return started + timedelta(seconds=max(0.0, self.first_delay))

    def next_after(self, last: datetime) -> datetime:
        return last + timedelta(seconds=self.seconds)

    def describe(self) -> str:
        return f"every {_duration(self.seconds)}"


@dataclass(frozen=True)
class DailyAt:
    """Once a day at `at` (UTC)."""

    at: time

    @classmethod
    def parse(cls, text: str) -> DailyAt:
        try:
            parsed = time.fromisoformat(text.strip())
        except ValueError:
            raise InvalidInput(f"{text!r} is not a time of day: give HH:MM (UTC), e.g. 02:00",
                               field="at") from None
        return cls(parsed.replace(tzinfo=None))

    def first_run(self, started: datetime) -> datetime:
        return self.next_after(started)

    def next_after(self, last: datetime) -> datetime:
        candidate = datetime.combine(last.date(), self.at, tzinfo=last.tzinfo)
        return candidate if candidate > last else candidate + timedelta(days=1)

    def describe(self) -> str:
        return f"daily at {self.at.strftime('%H:%M')} UTC"


Schedule = Every | DailyAt


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"
