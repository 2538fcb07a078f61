"""Schedules of periodic jobs: intervals and a daily time of day, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from meterbill.domain.errors import InvalidInput
from meterbill.domain.schedule import DailyAt, Every

T0 = datetime(2026, 12, 6, 14, 30, tzinfo=UTC)


def test_every_waits_its_first_delay_then_its_interval() -> None:
    schedule = Every(3600, first_delay=60)
    assert schedule.first_run(T0) == datetime(2026, 12, 6, 14, 31, tzinfo=UTC)
    assert schedule.next_after(T0) == datetime(2026, 12, 6, 15, 30, tzinfo=UTC)
    assert schedule.describe() == "every 1 h"
    assert Every(30).describe() == "every 30 s"


def test_daily_at_runs_later_today_or_tomorrow() -> None:
    nightly = DailyAt.parse("02:00")
    assert nightly.at == time(2, 0)
    assert nightly.first_run(T0) == datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    afternoon = DailyAt(time(16, 0))
    assert afternoon.next_after(T0) == datetime(2026, 12, 6, 16, 0, tzinfo=UTC)
    # exactly at the time: the run that just happened is not due again
    assert afternoon.next_after(datetime(2026, 12, 6, 16, 0, tzinfo=UTC)) == datetime(
        2026, 12, 7, 16, 0, tzinfo=UTC)
    assert nightly.describe() == "daily at 02:00 UTC"


@pytest.mark.parametrize("bad", ["25:00", "2am", ""])
def test_a_time_of_day_that_is_not_one_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="HH:MM"):
        DailyAt.parse(bad)


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(InvalidInput):
        Every(0)
