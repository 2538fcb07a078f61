"""The optional ClickHouse server of the usage tests: set METERBILL_TEST_CLICKHOUSE_URL
(`.ci/clickhouse.sh` installs and starts one and prints the export)."""

from __future__ import annotations

import os

import pytest

CLICKHOUSE_URL = os.environ.get("METERBILL_TEST_CLICKHOUSE_URL")
needs_clickhouse = pytest.mark.skipif(
    not CLICKHOUSE_URL, reason="set METERBILL_TEST_CLICKHOUSE_URL (see .ci/clickhouse.sh)")
