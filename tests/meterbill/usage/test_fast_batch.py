"""The fast path (`services.usage.fast_batch`) against the domain's parser, and exact-once totals.

The reference is `parse_event`, event by event, as ingestion checked every event before the
fast path: on a corpus of bad and odd events, the fast path must accept the same events with
the same values and reject the others with exactly the same errors, by index and field.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterbill.adapters.usage.duckdb_store import DuckDBUsageStore
from meterbill.domain.usage import (
    EventColumns,
    FieldError,
    UsageEvent,
    daily_buckets,
    parse_event,
    whole_seconds,
)
from meterbill.services.usage.fast_batch import decode_body
from meterbill.services.usage.ingest import UsageIngestService, ingest_file_with

NOW = datetime(2026, 5, 20, 12, 0, 30, 500_000, tzinfo=UTC)
TENANTS = {"acme", "globex", " acme"}
GOOD = {"event_id": "e", "tenant_id": "acme", "timestamp": "2026-05-20T10:00:00Z"}


def ev(**fields: object) -> dict[str, object]:
    """GOOD with some fields replaced; a value of `...` removes the field."""
    event = {**GOOD, **fields}
    return {key: value for key, value in event.items() if value is not ...}


CORPUS: list[object] = [
    ev(),
    ev(event_id=""), ev(event_id="   "), ev(event_id="\u2003\u00a0"), ev(event_id=" x "),
    ev(event_id=None), ev(event_id=...), ev(event_id=7), ev(event_id=True), ev(event_id=[]),
    ev(event_id="x" * 255), ev(event_id="x" * 256), ev(event_id="é" * 255),
    ev(event_id="😀" * 255), ev(event_id="😀" * 256), ev(event_id="a\x00b"),
    ev(tenant_id=""), ev(tenant_id="nobody"), ev(tenant_id=" acme"), ev(tenant_id=3.5),
    ev(metric="tokens"), ev(metric="queries"), ev(metric=""), ev(metric=" "), ev(metric=None),
    ev(metric="Queries"), ev(metric="cpu"), ev(metric=1),
    ev(quantity=1), ev(quantity=0), ev(quantity=-1), ev(quantity=2.0), ev(quantity=2.5),
    ev(quantity="3"), ev(quantity=" 4 "), ev(quantity="4.0"), ev(quantity=""), ev(quantity=None),
    ev(quantity=True), ev(quantity=False), ev(quantity=10**12), ev(quantity=10**12 + 1),
    ev(quantity=10**30), ev(quantity=-(10**30)), ev(quantity=[1]), ev(quantity={"n": 1}),
    ev(timestamp=...), ev(timestamp=None), ev(timestamp=""), ev(timestamp="  "),
    ev(timestamp=..., occurred_at="2026-05-20T10:00:00Z"),
    ev(occurred_at="2026-05-20T10:00:00Z"), ev(occurred_at=""), ev(timestamp="", occurred_at="x"),
    ev(timestamp="2026-05-20T10:00:00+02:00"), ev(timestamp="2026-05-20T10:00:00.999999Z"),
    ev(timestamp="2026-05-20T10:00:00.9999999Z"), ev(timestamp="2026-05-20 10:00:00Z"),
    ev(timestamp="2026-05-20t10:00:00z"), ev(timestamp="2026-05-20T10:00:00"),
    ev(timestamp="2026-05-20"), ev(timestamp="2026-05-20T24:00:00Z"),
    ev(timestamp="2026-02-29T10:00:00Z"), ev(timestamp="2026-05-20T10:00:60Z"),
    ev(timestamp="20260520T100000Z"), ev(timestamp="2026-W21-3T10:00:00Z"),
    ev(timestamp=" 2026-05-20T10:00:00Z "), ev(timestamp="2026-05-20T10:00Z"),
    ev(timestamp="2026-04-15T12:00:30Z"), ev(timestamp="2026-04-15T12:00:29Z"),
    ev(timestamp="2026-05-20T12:05:30Z"), ev(timestamp="2026-05-20T12:05:31Z"),
    ev(timestamp=1779271200), ev(timestamp=1779271200.7), ev(timestamp="1779271200"),
    ev(timestamp="1779271200.5"), ev(timestamp="+1779271200"), ev(timestamp=-1),
    ev(timestamp=1779271200000), ev(timestamp=10**30), ev(timestamp=True), ev(timestamp=[]),
    ev(timestamp="nonsense"), ev(timestamp="NaN"),
    # In the window, each a trap for a lenient parser of the canonical form:
    ev(timestamp="2026-05-19T23:59:60Z"), ev(timestamp="2026-04-31T10:00:00Z"),
    ev(timestamp="2026-05-19T24:00:00Z"), ev(timestamp="2026-5-19T10:00:00Z"),
    ev(timestamp="2026-05-19T10:00:00z"), ev(timestamp="\u0662\u0660\u0662\u0666-05-19T10:00:00Z"),
    ev(timestamp="2026-05-19T10:00:00Z\n"), ev(timestamp="2026-05-19T10:00:00+00:00"),
    ev(timestamp="2026-05-19T10:0:00Z"), ev(timestamp="2026-05-19T10:00:00ZZ"),
    ev(occurred_at="2026-05-19T10:00:00Z", timestamp=1779271200),
    ev(extra=1), ev(Event_id="x"), ev(quantity=-1, metric="x", timestamp="bad", event_id=""),
    "not an object", 42, None, [GOOD], {},
]


def _reference(items: list[object]) -> tuple[list[UsageEvent], list[FieldError]]:
    """What ingestion said before the fast path: `parse_event` per event, then the tenants."""
    stamp = whole_seconds(NOW)
    events: list[UsageEvent] = []
    errors: list[FieldError] = []
    for index, raw in enumerate(items):
        parsed = parse_event(raw, index, now=NOW, ingested_at=stamp)
        if isinstance(parsed, UsageEvent):
            if parsed.tenant_id in TENANTS:
                events.append(parsed)
            else:
                errors.append(FieldError(
                    index, "tenant_id",
                    f"Unknown tenant: {parsed.tenant_id}. Create it first with POST /customers "
                    "(or `meterbill tenants create`), then send its usage again."))
        else:
            errors.extend(parsed)
    errors.sort(key=lambda e: -1 if e.index is None else e.index)
    return events, errors


class _Recorder(DuckDBUsageStore):
    """A real DuckDB store that also keeps the columns it was given."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.loaded: list[EventColumns] = []

    def insert_columns(self, columns: EventColumns) -> int:
        self.loaded.append(columns)
        return super().insert_columns(columns)


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    made = _Recorder()
    yield made
    made.close()


def _service(store: DuckDBUsageStore) -> UsageIngestService:
    def known(tenant_ids: Collection[str]) -> set[str]:
        return set(tenant_ids) & TENANTS

    return UsageIngestService(store, known, clock=lambda: NOW)


def _ingest_body(service: UsageIngestService, body: bytes) -> list[FieldError]:
    fast = service.ingest_json(body)
    if fast is None:  # as the API does: the general route
        return service.ingest(json.loads(body)).errors
    return fast[0].errors


def _rows(columns: list[EventColumns]) -> list[tuple[object, ...]]:
    return [row for c in columns for row in zip(c.event_id, c.tenant_id, c.metric, c.quantity,
                                                c.occurred_s, c.ingested_s, strict=True)]


def _expected_rows(events: list[UsageEvent]) -> list[tuple[object, ...]]:
    return [(e.event_id, e.tenant_id, e.metric, e.quantity, int(e.occurred_at.timestamp()),
             int(e.ingested_at.timestamp())) for e in events]


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_each_corpus_event_gets_the_domain_parsers_verdict(recorder: _Recorder,
                                                           index: int) -> None:
    raw = CORPUS[index]
    items = [GOOD | {"event_id": "first"}, raw]
    body = json.dumps({"events": items}).encode()
    events, errors = _reference(items)
    assert _ingest_body(_service(recorder), body) == errors
    assert _rows(recorder.loaded) == _expected_rows(events)


def test_a_whole_corpus_batch_matches_and_plain_events_take_the_fast_route(
    recorder: _Recorder,
) -> None:
    items = [ev(event_id=f"id{i}") if isinstance(raw, dict) and "event_id" not in raw
             else raw for i, raw in enumerate(CORPUS)]
    events, errors = _reference(items)
    service = _service(recorder)
    assert service.ingest(items).errors == errors
    assert _rows(recorder.loaded) == _expected_rows(events)
    assert len(errors) > 40  # the corpus is mostly bad
    plain = json.dumps({"events": [ev(event_id=f"p{i}", timestamp=1779271200 + i)
                                   for i in range(50)]}).encode()
    assert decode_body(plain) is not None  # the fast route really is taken for plain bodies
    result, size = service.ingest_json(plain) or (None, 0)
    assert result is not None and size == 50 and result.stored == 50 and not result.errors


def test_bodies_off_the_plain_shape_leave_the_fast_route() -> None:
    for body in (b'{"events": [{"event_id": "a", "tenant_id": "acme", "timestamp": NaN}]}',
                 b'{"events": [], "extra": 1}', b'[]', b'{"events": {}}', b"{",
                 json.dumps({"events": [GOOD] * 10_001}).encode()):
        assert decode_body(body) is None


# --- exact-once totals --------------------------------------------------------------------

_event = st.tuples(
    st.integers(0, 40),  # event_id: few values, so duplicates are frequent
    st.sampled_from(["acme", "globex"]),
    st.sampled_from(["queries", "tokens"]),
    st.integers(1, 1000),
    st.integers(0, 34 * 86400),  # seconds before NOW: any day in the window
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(_event, max_size=30), min_size=1, max_size=6),
       shapes=st.lists(st.booleans(), min_size=6, max_size=6))
def test_totals_are_exact_whatever_the_duplicates_across_batches_and_days(
    batches: list[list[tuple[int, str, str, int, int]]], shapes: list[bool]
) -> None:
    """Random repeats of ids, within and across batches, under other days, tenants and
    quantities: every total counts the first ingestion of each id once, as `daily_buckets`."""
    store = DuckDBUsageStore(":memory:")
    try:
        service = _service(store)
        sent: list[UsageEvent] = []
        new = 0
        for batch, as_body in zip(batches, shapes, strict=False):
            raws = [{"event_id": f"id{n}", "tenant_id": tenant, "metric": metric,
                     "quantity": quantity if as_body else str(quantity),
                     "timestamp": int(NOW.timestamp()) - ago} for n, tenant, metric, quantity, ago
                    in batch]
            if as_body:  # the HTTP body route (fast), else the list route (CSV-like strings)
                result, _ = service.ingest_json(json.dumps({"events": raws}).encode()) or (
                    None, 0)
                assert result is not None
            else:
                result = service.ingest(raws)
            assert result.rejected == 0
            new += result.stored
            for raw in raws:
                parsed = parse_event(raw, 0, now=NOW, ingested_at=whole_seconds(NOW))
                assert isinstance(parsed, UsageEvent)
                sent.append(parsed)
        expected = {(t.tenant_id, t.metric, t.day): t.total for t in daily_buckets(sent)}
        start, end = NOW - timedelta(days=36), NOW + timedelta(days=1)
        got = {(t.tenant_id, t.metric, t.day): t.total
               for metric in ("queries", "tokens")
               for t in store.daily_totals(None, metric, start, end)}
        assert got == expected
        assert new == store.count_raw() == len({e.event_id for e in sent})
    finally:
        store.close()


def test_known_tenants_are_asked_once_and_unknown_ones_every_time() -> None:
    from meterbill.services.usage.ingest import KnownTenants

    asked: list[set[str]] = []
    existing = {"acme"}

    def lookup(ids: Collection[str]) -> set[str]:
        asked.append(set(ids))
        return set(ids) & existing

    known = KnownTenants(lookup)
    assert known(["acme", "newco"]) == {"acme"}
    existing.add("newco")  # created meanwhile: found on the next batch
    assert known(["acme", "newco"]) == {"acme", "newco"}
    assert known(["newco", "acme"]) == {"acme", "newco"}
    assert asked == [{"acme", "newco"}, {"newco"}]


def test_json_lines_taken_as_one_body_answer_as_line_by_line(tmp_path: Path) -> None:
    """A file's chunks of plain lines go through as one body; the answer (counts, errors by
    index and line) is the one the line-by-line route gives, tricky lines included."""
    lines = [json.dumps(ev(event_id=f"a{i}")) for i in range(5)]  # chunk 1: all plain
    lines += [json.dumps(ev(event_id="b1")) + ", " + json.dumps(ev(event_id="b2")),  # 2 objects
              json.dumps(ev(event_id="b3"))[:-1] + ",", "}", "", json.dumps(ev(event_id="a1")),
              json.dumps(ev(quantity="2", event_id="b4")), "[1]", json.dumps(ev(event_id="b5"))]
    lines += [json.dumps(ev(event_id=f"c{i}", timestamp=1779271200 - i)) for i in range(5)]
    path = tmp_path / "events.jsonl"
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    answers = []
    for fast in (True, False):
        store = DuckDBUsageStore(":memory:")
        try:
            service = UsageIngestService(store, lambda ids: set(ids) & TENANTS, clock=lambda: NOW,
                                         chunk_size=5)
            sender = service.batch_sender()
            send = sender if fast else (lambda batch, s=sender: s(batch))  # no `lines`: by line
            answers.append((ingest_file_with(send, path, chunk_size=5).to_dict(),
                            store.count_raw()))
        finally:
            store.close()
    assert answers[0] == answers[1]
    assert answers[0][0]["rejected"] == 4 and answers[0][1] == 12


@pytest.mark.parametrize("body", [
    # a repeated key: `json` keeps the last value, and so must the fast path
    b'{"events": [{"event_id": "a", "event_id": "b", "tenant_id": "acme", "quantity": 1,'
    b' "quantity": 2, "timestamp": "2026-05-20T10:00:00Z"}]}',
    b'{"events": [{"event_id": "a", "tenant_id": "acme", "timestamp": "\\ud800"}]}',
    b'{"events": [{"event_id": "a", "tenant_id": "acme", "timestamp": 1779271200,'
    b' "quantity": 18446744073709551615}]}',
    b'{"events": [{"event_id": "a\\u0000", "tenant_id": "acme", "timestamp": 1779271200}]}',
    # a lone surrogate in an id: an error naming the field (the store cannot hold it)
    b'{"events": [{"event_id": "\\udc00x", "tenant_id": "acme", "timestamp": 1779271200},'
    b' {"event_id": "ok", "tenant_id": "acme", "timestamp": 1779271200}]}',
])
def test_raw_bodies_get_the_answer_of_json_and_the_domain(recorder: _Recorder,
                                                          body: bytes) -> None:
    items = json.loads(body)["events"]
    events, errors = _reference(items)
    assert _ingest_body(_service(recorder), body) == errors
    assert _rows(recorder.loaded) == _expected_rows(events)
