"""Usage ingestion: raw events (API batches, CSV or JSON-lines files) into the usage store.

Bad events never stop good ones: each problem is reported by index and field and the rest are
stored. A repeated `event_id` is accepted and counted once (the store dedupes). Files stream in
chunks of at most one API batch, so memory stays flat whatever the file size.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Literal

from ...domain.clock import Clock, utcnow
from ...domain.errors import InvalidInput
from ...domain.usage import (
    FIELDS,
    MAX_BATCH,
    TIMESTAMP_FIELD,
    FieldError,
    batch_items,
)
from ...ports.metrics import metrics
from ...ports.usage_store import UsageStore
from .fast_batch import PlainEvent, decode_body, plain, raw_events_of, to_columns

FileFormat = Literal["csv", "jsonl"]
# Errors kept in a result; the rest are only counted, so a bad file cannot exhaust memory.
MAX_REPORTED_ERRORS = 1000
_SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
}


@dataclass
class IngestResult:
    """`accepted`: valid events, new or not; `duplicates`: those already stored (or repeated
    in the input), so `accepted - duplicates` rows were added. `rejected`: events refused;
    `errors` lists their problems (the first MAX_REPORTED_ERRORS of them)."""

    accepted: int = 0
    duplicates: int = 0
    errors: list[FieldError] = field(default_factory=list)
    rejected: int = 0

    @property
    def stored(self) -> int:
        return self.accepted - self.duplicates

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": [error.to_dict() for error in self.errors],
        }

    def _add(self, other: IngestResult) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        room = MAX_REPORTED_ERRORS - len(self.errors)
        self.errors.extend(other.errors[:max(room, 0)])


@dataclass(frozen=True)
class IngestProgress:
    records: int  # events read so far
    accepted: int
    duplicates: int
    rejected: int
    bytes_read: int
    bytes_total: int


ProgressCallback = Callable[[IngestProgress], None]


class KnownTenants:
    """`known_tenants` that remembers the ids it found: meterbill never deletes a tenant, so a
    known id stays known and a batch of known tenants costs no query. Unknown ids are asked
    again each time (the tenant may be created at any moment). Past MAX_REMEMBERED ids the
    memory is dropped and refilled, so it stays bounded."""

    MAX_REMEMBERED = 1_000_000

    def __init__(self, lookup: Callable[[Collection[str]], set[str]]) -> None:
        self._lookup = lookup
        self._known: set[str] = set()

    def __call__(self, tenant_ids: Collection[str]) -> set[str]:
        asked = set(tenant_ids)
        missing = asked - self._known
        if missing:
            found = self._lookup(missing)
            if len(self._known) + len(found) > self.MAX_REMEMBERED:
                self._known = set()
            self._known |= found
            return (asked - missing) | found
        return asked


class UsageIngestService:
    def __init__(
        self,
        store: UsageStore,
        known_tenants: Callable[[Collection[str]], set[str]],
        clock: Clock = utcnow,
        *,
        chunk_size: int = MAX_BATCH,
    ) -> None:
        if not 0 < chunk_size <= MAX_BATCH:
            raise ValueError(f"chunk_size must be between 1 and {MAX_BATCH}")
        self.store = store
        # Which of some tenant ids exist: asked once per chunk for the ids not seen before (a
        # batch of 10,000 events over 1,000 tenants would otherwise make 1,000 look-ups).
        self.known_tenants = known_tenants
        self.clock = clock
        self.chunk_size = chunk_size

    def ingest(self, raw_events: object) -> IngestResult:
        """One API batch (a list of event objects, or `{"events": [...]}`) of at most 10,000.

        Raises `BatchTooLarge` / `InvalidInput` when the batch itself is unusable.
        """
        if isinstance(raw_events, Mapping) and "events" in raw_events:
            raw_events = raw_events["events"]
        return self._ingest_chunk(raw_events, tenants={})

    def ingest_file(
        self,
        path: str | os.PathLike[str],
        progress: ProgressCallback | None = None,
        *,
        file_format: FileFormat | None = None,
    ) -> IngestResult:
        """A CSV (header row with the field names) or JSON-lines file, streamed in chunks.

        `index` in errors counts events from 0 in file order; `line` is the file's line.
        `progress` is called after each chunk.
        """
        return ingest_file_with(self.batch_sender(), path, progress, file_format=file_format,
                                chunk_size=self.chunk_size)

    def batch_sender(self) -> BatchSender:
        """Batches of one file into this store (tenants looked up once for the whole file)."""
        return _FileSender(self)

    def ingest_json(self, body: bytes) -> tuple[IngestResult, int] | None:
        """A `POST /usage/events` body whose events all have the plain shape, decoded and
        checked at once (see `fast_batch`): its result and number of events. None when the
        body is anything else; then decode it with `json` and call `ingest`, whose checks and
        messages are the general ones."""
        events = decode_body(body)
        if events is None:
            return None
        return self._ingest_plain(events, raw_events_of(body), tenants={}), len(events)

    def _ingest_chunk(
        self, raw_events: object, *, tenants: dict[str, bool]
    ) -> IngestResult:
        items = batch_items(raw_events)
        return self._ingest_plain([plain(raw) for raw in items], items.__getitem__,
                                  tenants=tenants)

    def _ingest_plain(
        self, events: Sequence[PlainEvent | None], raw_at: Callable[[int], object], *,
        tenants: dict[str, bool],
    ) -> IngestResult:
        columns, indexes, errors = to_columns(events, raw_at, self.clock())
        unseen = set(columns.tenant_id) - tenants.keys()
        if unseen:
            found = self.known_tenants(unseen)
            tenants.update((tenant_id, tenant_id in found) for tenant_id in unseen)
        if not all(tenants[tenant_id] for tenant_id in set(columns.tenant_id)):
            keep = [tenants[tenant_id] for tenant_id in columns.tenant_id]
            for index, tenant_id, known in zip(indexes, columns.tenant_id, keep, strict=True):
                if not known:
                    errors.append(FieldError(
                        index, "tenant_id",
                        f"Unknown tenant: {tenant_id}. Create it first with POST /customers "
                        "(or `meterbill tenants create`), then send its usage again.",
                    ))
            columns = columns.select(keep)
        errors.sort(key=lambda e: -1 if e.index is None else e.index)  # stable: in event order
        new = self.store.insert_columns(columns) if len(columns) else 0
        _measured(new, len({e.index for e in errors}))
        return IngestResult(
            accepted=len(columns),
            duplicates=len(columns) - new,
            errors=errors[:MAX_REPORTED_ERRORS],
            rejected=len({e.index for e in errors}),
        )


def _measured(stored: int, rejected: int) -> None:
    metrics.count("usage_events_ingested", stored)
    metrics.count("usage_events_rejected", rejected)


class _FileSender:
    """A file's batches into one service, tenants shared; `lines` takes JSON lines at once."""

    def __init__(self, service: UsageIngestService) -> None:
        self.service = service
        self.tenants: dict[str, bool] = {}

    def __call__(self, batch: list[object]) -> IngestResult:
        return self.service._ingest_chunk(batch, tenants=self.tenants)

    def lines(self, texts: list[str]) -> IngestResult | None:
        """JSON lines that are all plain events, checked as one body; None otherwise."""
        events = decode_body(('{"events":[' + ",".join(texts) + "]}").encode())
        if events is None or len(events) != len(texts):  # e.g. two objects on one line
            return None
        return self.service._ingest_plain(events, lambda i: json.loads(texts[i]),
                                          tenants=self.tenants)


BatchSender = Callable[[list[object]], IngestResult]
"""Ingests one batch of raw events (at most 10,000) and answers as `POST /usage/events` does:
errors by index in that batch. The service's own store, or a running server over HTTP."""


def ingest_file_with(
    send: BatchSender,
    path: str | os.PathLike[str],
    progress: ProgressCallback | None = None,
    *,
    file_format: FileFormat | None = None,
    chunk_size: int = MAX_BATCH,
) -> IngestResult:
    """Stream a CSV or JSON-lines file through `send` in batches of `chunk_size`.

    Lines that hold no record are reported here and never sent; the batch's errors are mapped
    back to the event's index in the file and its line.
    """
    path = Path(path)
    result = IngestResult()
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        reader = _LineReader(handle)
        fmt = file_format or _guess_format(path, handle)
        records = _csv_records(reader) if fmt == "csv" else _jsonl_lines(reader)
        lines: Callable[[list[str]], IngestResult | None] | None = getattr(send, "lines", None)
        chunk: list[tuple[int, object]] = []
        read = 0

        def flush() -> None:
            first = read - len(chunk)
            errors: list[FieldError] = []
            plain = lines([str(raw) for _, raw in chunk]) if lines and fmt == "jsonl" else None
            if plain is not None:  # every line a plain event, checked as one body
                part = plain
                sent = [(first + offset, line) for offset, (line, _) in enumerate(chunk)]
            else:
                records = [(line, _record(raw)) for line, raw in chunk]
                sent = []  # (index in the file, line) of each event sent
                for offset, (line, raw) in enumerate(records):
                    if isinstance(raw, _Unparsable):
                        errors.append(FieldError(first + offset, None, f"This line is {raw}.",
                                                 line))
                    else:
                        sent.append((first + offset, line))
                part = send([raw for _, raw in records if not isinstance(raw, _Unparsable)])
            for error in part.errors:
                if error.index is None:
                    errors.append(error)
                else:
                    index, line = sent[error.index]
                    errors.append(replace(error, index=index, line=line))
            errors.sort(key=lambda e: -1 if e.index is None else e.index)  # stable
            result._add(IngestResult(
                accepted=part.accepted, duplicates=part.duplicates,
                errors=errors[:MAX_REPORTED_ERRORS],
                rejected=part.rejected + len(chunk) - len(sent)))
            chunk.clear()
            if progress is not None:
                progress(IngestProgress(read, result.accepted, result.duplicates,
                                        result.rejected, reader.bytes_read, size))

        for line, raw in records:
            chunk.append((line, raw))
            read += 1
            if len(chunk) >= chunk_size:
                flush()
        if chunk or read == 0:
            flush()
    return result


# --- file formats -----------------------------------------------------------------------


class _LineReader:
    """Decoded lines of a binary file, counting bytes read for progress."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.bytes_read = 0
        self.line = 0

    def __iter__(self) -> Iterator[str]:
        for raw in self.handle:
            self.bytes_read += len(raw)
            self.line += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(
                    f"Line {self.line} is not UTF-8 text; save the file as UTF-8 and run the "
                    "import again (events already read were stored; repeated ids count once).",
                    field="file",
                ) from None
            if self.line == 1:
                text = text.removeprefix("\ufeff")  # a BOM from spreadsheet exports
            yield text


def _guess_format(path: Path, handle: BinaryIO) -> FileFormat:
    by_suffix = _SUFFIXES.get(path.suffix.lower())
    if by_suffix:
        return by_suffix
    head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    handle.seek(0)
    return "jsonl" if head.startswith(b"{") else "csv"


def _jsonl_lines(reader: _LineReader) -> Iterable[tuple[int, object]]:
    for text in reader:
        if text.strip():
            yield reader.line, _JsonText(text)


def _record(raw: object) -> object:
    """A JSON line's object (an `_Unparsable` if it is not JSON); other records as they are."""
    if not isinstance(raw, _JsonText):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        # Not an event object: parse_event reports it with the reason.
        return _Unparsable(f"not valid JSON ({exc.msg} at column {exc.colno})")


def _csv_records(reader: _LineReader) -> Iterable[tuple[int, object]]:
    rows = csv.reader(reader)
    header: list[str] | None = None
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip() for cell in row]
            _check_header(header)
            continue
        if len(row) != len(header):
            yield rows.line_num, _Unparsable(
                f"has {len(row)} cells but the header has {len(header)} columns")
            continue
        yield rows.line_num, dict(zip(header, row, strict=True))


def _check_header(header: list[str]) -> None:
    allowed = ", ".join(FIELDS[:5])
    for name in header:
        if name not in FIELDS:
            raise InvalidInput(f"CSV column {name!r} is not an event field. Columns: {allowed} "
                               "(metric and quantity optional).", field=name)
    if len(set(header)) != len(header):
        raise InvalidInput("The CSV header names a column twice.", field="header")
    missing = [n for n in ("event_id", "tenant_id") if n not in header]
    if TIMESTAMP_FIELD not in header and "occurred_at" not in header:
        missing.append(TIMESTAMP_FIELD)
    if missing:
        raise InvalidInput(f"The CSV header lacks {', '.join(missing)}; the first row must "
                           f"name the columns: {allowed}.", field=missing[0])


class _Unparsable(str):
    """A file line that holds no record; its text says why."""

    __slots__ = ()


class _JsonText(str):
    """A JSON line not decoded yet."""

    __slots__ = ()
