"""Group insert: concurrent batches share a statement, and each still gets its exact count of
new events, on every store (DuckDB always, ClickHouse when METERBILL_TEST_CLICKHOUSE_URL is set)."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from meterbill.adapters.usage.duckdb_store import DuckDBUsageStore
from meterbill.adapters.usage.group_insert import GroupInsert
from meterbill.domain.usage import EventColumns
from meterbill.ports.usage_store import UsageStore

from .clickhouse import needs_clickhouse

_tables = itertools.count()
DAY = 1_779_000_000  # 2026-05-17, whole seconds


def columns(ids: list[str], quantity: int = 1) -> EventColumns:
    return EventColumns(ids, ["t1"] * len(ids), ["queries"] * len(ids), [quantity] * len(ids),
                        [DAY + i for i in range(len(ids))], [DAY] * len(ids))


@pytest.fixture(params=["duckdb", pytest.param("clickhouse", marks=needs_clickhouse)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UsageStore]:
    made: UsageStore
    if request.param == "duckdb":
        made = DuckDBUsageStore(tmp_path / "usage.duckdb")
    else:
        from meterbill.adapters.usage.clickhouse_store import ClickHouseUsageStore

        made = ClickHouseUsageStore(request.getfixturevalue("clickhouse_db"),
                                    table=f"group_{next(_tables)}")
    yield made
    made.close()


def test_concurrent_overlapping_batches_count_each_id_new_once(store: UsageStore) -> None:
    rng = random.Random(7)
    batches = [[f"id{rng.randrange(3000)}" for _ in range(rng.choice((1, 50, 400)))]
               for _ in range(120)]
    news: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker(mine: list[list[str]]) -> None:
        barrier.wait()
        for ids in mine:
            new = store.insert_columns(columns(ids))
            with lock:
                news.append(new)

    threads = [threading.Thread(target=worker, args=(batches[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    distinct = len({i for ids in batches for i in ids})
    assert len(news) == len(batches)
    assert sum(news) == distinct == store.count_raw()


def test_a_joint_statement_gives_each_batch_its_own_count_first_come_first_counted() -> None:
    calls: list[int] = []
    started = threading.Event()
    release = threading.Event()
    stored: set[str] = set()

    def write(joint: EventColumns, which: bool) -> tuple[int, list[bool] | None]:
        calls.append(len(joint))
        if len(calls) == 1:  # hold the first statement so that the others queue behind it
            started.set()
            release.wait(10)
        fresh = []
        for event_id in joint.event_id:
            fresh.append(event_id not in stored)
            stored.add(event_id)
        return sum(fresh), fresh if which else None

    group = GroupInsert(write)
    results: dict[str, int] = {}
    first = threading.Thread(target=lambda: results.update(a=group(columns(["x", "y"]))))
    first.start()
    assert started.wait(10)
    others = []
    for name, ids in (("b", ["y", "z", "z2"]), ("c", ["z", "w"])):  # queued in this order
        thread = threading.Thread(
            target=lambda n=name, i=ids: results.update({n: group(columns(i))}))
        thread.start()
        others.append(thread)
        while len(group._queue) < len(others):
            threading.Event().wait(0.01)
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert calls == [2, 5]  # one statement for the two queued batches
    # b: y was stored by a, z and z2 are new; c: z is b's (queued first), w is new.
    assert results == {"a": 2, "b": 2, "c": 1}


def test_a_failed_statement_fails_every_batch_in_it() -> None:
    def write(joint: EventColumns, which: bool) -> tuple[int, list[bool] | None]:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        GroupInsert(write)(columns(["a"]))
