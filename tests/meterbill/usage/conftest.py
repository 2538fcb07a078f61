"""Fixtures of the usage tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from .clickhouse import CLICKHOUSE_URL


@pytest.fixture(scope="session")
def clickhouse_db() -> Iterator[str]:
    """A ClickHouse database of its own for this test session, dropped afterwards."""
    assert CLICKHOUSE_URL
    from clickhouse_driver import Client

    parts = urlsplit(CLICKHOUSE_URL)
    name = f"meterbill_test_{uuid.uuid4().hex[:12]}"
    admin = Client.from_url(urlunsplit(parts._replace(path="/default")))
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.disconnect()
