"""Usage ingestion: API batches and CSV / JSON-lines files into a real (DuckDB) store."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from meterbill.adapters.usage.duckdb_store import DuckDBUsageStore
from meterbill.domain.errors import InvalidInput
from meterbill.domain.usage import BatchTooLarge
from meterbill.services.usage.ingest import (
    MAX_REPORTED_ERRORS,
    IngestProgress,
    UsageIngestService,
)

NOW = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
TENANTS = {"acme", "globex"}
TODAY = (NOW.replace(hour=0), NOW + timedelta(hours=1))


@pytest.fixture
def store() -> Iterator[DuckDBUsageStore]:
    made = DuckDBUsageStore(":memory:")
    yield made
    made.close()


@pytest.fixture
def lookups() -> list[str]:
    return []


@pytest.fixture
def service(store: DuckDBUsageStore, lookups: list[str]) -> UsageIngestService:
    def known_tenants(tenant_ids: Collection[str]) -> set[str]:
        lookups.extend(tenant_ids)
        return set(tenant_ids) & TENANTS

    return UsageIngestService(store, known_tenants, clock=lambda: NOW, chunk_size=3)


def raw(event_id: str, tenant: str = "acme", **extra: object) -> dict[str, object]:
    return {"event_id": event_id, "tenant_id": tenant, "timestamp": "2026-05-20T10:00:00Z",
            **extra}


def test_good_events_are_stored_and_bad_ones_reported_by_index(
    service: UsageIngestService, store: DuckDBUsageStore, lookups: list[str]
) -> None:
    result = service.ingest({"events": [
        raw("e1", quantity=3),
        raw("e2", tenant="initech"),
        raw("e3", quantity=-2),
        {"tenant_id": "acme", "timestamp": "2026-05-20T10:00:00Z"},
        raw("e5", timestamp="2026-03-01T00:00:00Z"),
        raw("e6", tenant="globex", metric="tokens", quantity=700),
        raw("e7", tenant="initech"),
    ]})
    assert (result.accepted, result.duplicates, result.rejected) == (2, 0, 5)
    assert [(e.index, e.field) for e in result.errors] == [
        (1, "tenant_id"), (2, "quantity"), (3, "event_id"), (4, "timestamp"), (6, "tenant_id")]
    assert "Unknown tenant: initech" in result.errors[0].message
    assert result.to_dict()["errors"][0] == {
        "index": 1, "field": "tenant_id", "message": result.errors[0].message}
    assert store.total("acme", "queries", *TODAY) == 3
    assert store.total("globex", "tokens", *TODAY) == 700
    assert sorted(lookups) == ["acme", "globex", "initech"]  # each tenant looked up once


def test_a_repeated_event_id_is_accepted_and_counted_once(
    service: UsageIngestService, store: DuckDBUsageStore
) -> None:
    first = service.ingest([raw("e1"), raw("e2"), raw("e1")])
    assert (first.accepted, first.duplicates, first.stored) == (3, 1, 2)
    again = service.ingest([raw("e1"), raw("e2"), raw("e3")])
    assert (again.accepted, again.duplicates, again.stored) == (3, 2, 1)
    assert store.total("acme", "queries", *TODAY) == 3


def test_a_batch_over_10000_is_refused_whole(service: UsageIngestService,
                                              store: DuckDBUsageStore) -> None:
    with pytest.raises(BatchTooLarge):
        service.ingest([raw(f"e{i}") for i in range(10_001)])
    assert store.count_raw() == 0


def test_ingested_at_comes_from_the_clock(store: DuckDBUsageStore) -> None:
    service = UsageIngestService(store, set, clock=lambda: NOW.replace(microsecond=7))
    service.ingest([raw("e1")])
    row = store._cursor().execute("SELECT ingested_at FROM usage_events").fetchone()
    assert row is not None and row[0] == NOW.replace(tzinfo=None)


# --- files ------------------------------------------------------------------------------


def test_csv_file_streams_in_chunks_with_progress_and_line_numbers(
    service: UsageIngestService, store: DuckDBUsageStore, tmp_path: Path
) -> None:
    path = tmp_path / "backfill.csv"
    path.write_text(
        "\ufeffevent_id,tenant_id,metric,quantity,timestamp\n"
        "e1,acme,queries,2,2026-05-20T09:00:00Z\n"
        "\n"
        "e2,acme,,,1779267600\n"
        "\"e,3\",globex,tokens,50,2026-05-19T23:59:59Z\n"
        "e4,acme,queries,zero,2026-05-20T09:00:00Z\n"
        "e5,initech,queries,1,2026-05-20T09:00:00Z\n"
        "e6,acme,queries\n"
        "e1,acme,queries,2,2026-05-20T09:00:00Z\n",
        encoding="utf-8",
    )
    seen: list[IngestProgress] = []
    result = service.ingest_file(path, progress=seen.append)
    assert (result.accepted, result.duplicates, result.rejected) == (4, 1, 3)
    assert [(e.index, e.line, e.field) for e in result.errors] == [
        (3, 6, "quantity"), (4, 7, "tenant_id"), (5, 8, None)]
    assert "has 3 cells" in result.errors[2].message
    assert store.total("acme", "queries", *TODAY) == 3
    assert store.total("globex", "tokens", NOW - timedelta(days=1), NOW) == 50
    assert [p.records for p in seen] == [3, 6, 7]
    assert seen[-1].bytes_read == seen[-1].bytes_total == path.stat().st_size
    assert seen[-1].accepted == 4 and seen[-1].rejected == 3


def test_jsonl_file_reports_broken_lines(
    service: UsageIngestService, store: DuckDBUsageStore, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(raw("e1")), "", json.dumps(raw("e2", quantity=4)), "{not json",
             json.dumps(["e3"]), json.dumps(raw("e4", metric="bytes"))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    seen: list[IngestProgress] = []
    result = service.ingest_file(path, progress=seen.append)
    assert (result.accepted, result.rejected) == (2, 3)
    assert [(e.index, e.line, e.field) for e in result.errors] == [
        (2, 4, None), (3, 5, None), (4, 6, "metric")]
    assert "not valid JSON" in result.errors[0].message
    assert store.total("acme", "queries", *TODAY) == 5
    assert seen[-1].records == 5 and seen[-1].bytes_read == path.stat().st_size


def test_format_is_guessed_when_the_suffix_says_nothing(
    service: UsageIngestService, tmp_path: Path
) -> None:
    jsonl, csv_file = tmp_path / "a.txt", tmp_path / "b.txt"
    jsonl.write_text(json.dumps(raw("j1")) + "\n", encoding="utf-8")
    csv_file.write_text("event_id,tenant_id,timestamp\nc1,acme,1779267600\n", encoding="utf-8")
    assert service.ingest_file(jsonl).accepted == 1
    assert service.ingest_file(csv_file).accepted == 1


@pytest.mark.parametrize(("header", "field", "hint"), [
    ("event_id,tenant_id,timestamp,amount", "amount", "not an event field"),
    ("event_id,tenant_id,quantity", "timestamp", "lacks timestamp"),
    ("event_id,event_id,tenant_id,timestamp", "header", "twice"),
])
def test_bad_csv_header_is_refused_before_any_row(
    service: UsageIngestService, store: DuckDBUsageStore, tmp_path: Path,
    header: str, field: str, hint: str,
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(header + "\ne1,acme,1779267600,1\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as raised:
        service.ingest_file(path)
    assert raised.value.field == field and hint in raised.value.message
    assert store.count_raw() == 0


def test_errors_kept_are_capped_but_all_are_counted(
    store: DuckDBUsageStore, tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    bad = MAX_REPORTED_ERRORS + 5
    path.write_text("".join(json.dumps(raw(f"e{i}", quantity=0)) + "\n" for i in range(bad))
                    + json.dumps(raw("ok")) + "\n", encoding="utf-8")
    service = UsageIngestService(store, set, clock=lambda: NOW, chunk_size=400)
    result = service.ingest_file(path)
    assert result.rejected == bad and len(result.errors) == MAX_REPORTED_ERRORS
    assert result.accepted == 1


def test_an_empty_file_ingests_nothing(service: UsageIngestService, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    seen: list[IngestProgress] = []
    result = service.ingest_file(path, progress=seen.append)
    assert (result.accepted, result.rejected, len(seen)) == (0, 0, 1)


def test_a_file_that_is_not_utf8_is_refused_clearly(
    service: UsageIngestService, tmp_path: Path
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("event_id,tenant_id,timestamp\ne1,acme,1779267600\n"
                     "e2,acm\xe9,1779267600\n".encode("latin-1"))
    with pytest.raises(InvalidInput) as raised:
        service.ingest_file(path)
    assert raised.value.field == "file" and "Line 3 is not UTF-8" in raised.value.message
