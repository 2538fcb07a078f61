"""Usage store adapters and `open_usage_store(url)`, which picks one from a URL.

- `duckdb:///var/usage.duckdb` (relative to the working directory), `duckdb:////abs/usage.duckdb`,
  `duckdb:///:memory:`
- `clickhouse://[user[:password]@]host[:9000]/database` (native protocol, `clickhouse-driver`)

Each adapter module imports its driver, so a deployment needs only the one it uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from ...ports.usage_store import UsageStore

__all__ = ["open_usage_store", "chunks"]

T = TypeVar("T")


def open_usage_store(
    url: str, *, clickhouse_source: Mapping[str, str | None] | None = None
) -> UsageStore:
    """The store a URL names. `clickhouse_source` maps an existing events table (the seeds'
    `usage_events`) for the ClickHouse store to read as well; see `SourceTable`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"Usage store URL {url!r} has no scheme; use duckdb:///path or "
                         "clickhouse://host:9000/db")
    scheme = scheme.lower()
    if scheme == "duckdb":
        if not rest.startswith("/"):
            raise ValueError(f"DuckDB usage store URL {url!r} must look like "
                             "duckdb:///relative/file.duckdb or duckdb:///:memory:")
        path = rest[1:]  # like SQLAlchemy's sqlite:///: three slashes relative, four absolute
        if not path:
            raise ValueError(f"DuckDB usage store URL {url!r} names no file")
        if clickhouse_source:
            raise ValueError("a source table mapping needs a ClickHouse usage store")
        from .duckdb_store import DuckDBUsageStore

        return DuckDBUsageStore(path)
    if scheme == "clickhouse":
        from .clickhouse_store import ClickHouseUsageStore

        return ClickHouseUsageStore(url, source=clickhouse_source)
    raise ValueError(f"Unknown usage store {scheme!r} in {url!r}; use duckdb:// or clickhouse://")


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to `size` items, consuming `items` lazily (constant memory)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
