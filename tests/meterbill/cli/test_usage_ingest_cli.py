"""`meterbill usage ingest FILE` and `meterbill tenants usage` on the test's container."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from meterbill.bootstrap import Container, build
from meterbill.entrypoints.cli import CliContext
from stripe_sandbox import Sandbox, SandboxHTTPClient

from .conftest import Run, run_cli

NOW = datetime.now(UTC).replace(microsecond=0)
AGO = (NOW - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
OLD = (NOW - timedelta(days=40)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def tenants(container: Container) -> tuple[str, str]:
    container.customers.ensure_customer("acme", "ops@acme.test", None)
    container.customers.ensure_customer("globex", "ops@globex.test", None)
    return "acme", "globex"


def total(container: Container, tenant: str, metric: str = "queries") -> int:
    return container.usage_store.total(tenant, metric, NOW - timedelta(days=2),
                                       NOW + timedelta(days=1))


def write_csv(path: Path) -> Path:
    path.write_text(
        "event_id,tenant_id,metric,quantity,timestamp\n"
        f"c1,acme,queries,3,{AGO}\n"
        f"c2,globex,tokens,700,{AGO}\n"
        f"c3,acme,queries,-4,{AGO}\n"        # line 4: negative quantity
        f"c4,initech,queries,1,{AGO}\n"      # line 5: unknown tenant
        f"c1,acme,queries,3,{AGO}\n"         # a repeat: accepted, counted once
        f"c6,acme,,,{OLD}\n",                # line 7: older than 35 days
        encoding="utf-8")
    return path


def test_csv_with_bad_rows_stores_the_good_lists_the_bad_and_exits_1(
    cli: Run, container: Container, tenants: tuple[str, str], tmp_path: Path
) -> None:
    result = cli("usage", "ingest", str(write_csv(tmp_path / "usage.csv")))
    assert result.exit_code == 1, result.output
    out = result.output
    assert "Ingested usage.csv" in out
    for row in ("accepted", "duplicates", "rejected"):
        assert row in out
    assert "Problems (first 3 of 3 listed)" in out
    assert "Unknown tenant: initech" in out and "35 days" in out
    assert "3 events were rejected" in out
    assert total(container, "acme") == 3
    assert total(container, "globex", "tokens") == 700


def test_csv_json_output_has_counts_and_errors_by_line_and_field(
    cli: Run, container: Container, tenants: tuple[str, str], tmp_path: Path
) -> None:
    result = cli("usage", "ingest", str(write_csv(tmp_path / "usage.csv")), "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["events_read"], data["accepted"], data["duplicates"], data["stored"],
            data["rejected"]) == (6, 3, 1, 2, 3)
    assert [(e["line"], e["index"], e["field"]) for e in data["errors"]] == [
        (4, 2, "quantity"), (5, 3, "tenant_id"), (7, 5, "timestamp")]


def test_jsonl_all_good_exits_0_and_a_second_run_only_finds_duplicates(
    cli: Run, container: Container, tenants: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "events.log"  # no telling suffix: --format says it
    path.write_text("\n".join(json.dumps({"event_id": f"j{i}", "tenant_id": "acme",
                                          "quantity": 2, "timestamp": AGO})
                              for i in range(25)) + "\n", encoding="utf-8")
    first = cli("usage", "ingest", str(path), "--format", "jsonl", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["stored"] == 25
    again = cli("usage", "ingest", str(path), "--format", "jsonl", "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["duplicates"] == 25
    assert total(container, "acme") == 50


def test_jsonl_with_a_broken_line(
    cli: Run, container: Container, tenants: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"event_id": "k1", "tenant_id": "acme", "timestamp": AGO})
                    + "\n{not json\n"
                    + json.dumps({"event_id": "k3", "tenant_id": "acme", "timestamp": AGO})
                    + "\n", encoding="utf-8")
    result = cli("usage", "ingest", str(path), "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["stored"], data["rejected"]) == (2, 1)
    assert data["errors"][0]["line"] == 2 and "not valid JSON" in data["errors"][0]["message"]


def test_progress_bar_shows_bytes_on_stderr(
    cli: Run, container: Container, tenants: tuple[str, str], tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "usage.csv")
    result = cli("usage", "ingest", str(path), "--progress")
    size = path.stat().st_size
    assert f"{size}/{size} bytes" in result.stderr
    assert "6 events, 3 rejected" in result.stderr


def test_unusable_inputs_fail_with_a_fix(
    cli: Run, container: Container, tenants: tuple[str, str], tmp_path: Path
) -> None:
    missing = cli("usage", "ingest", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2 and "No such file" in missing.stderr
    header = tmp_path / "bad.csv"
    header.write_text("id,tenant,when\nx,acme,2026-01-01\n", encoding="utf-8")
    bad = cli("usage", "ingest", str(header), "--json")
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["error"]["code"] == "invalid_input"
    assert container.usage_store.count_raw() == 0


def test_a_duckdb_file_held_by_another_process_is_a_clean_error(
    container: Container, sandbox: Sandbox, tmp_path: Path
) -> None:
    store_file = tmp_path / "usage.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); sys.stdin.read()", str(store_file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        settings = container.settings.model_copy(
            update={"usage_store_url": f"duckdb:///{store_file}"})
        context = CliContext(
            settings_factory=lambda: settings,
            container_factory=lambda s: build(s, stripe_http_client=SandboxHTTPClient(sandbox)),
            lasting_sandbox=False)
        result = run_cli(context, "usage", "ingest", str(write_csv(tmp_path / "u.csv")))
    finally:
        holder.communicate("", timeout=10)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "Cannot open the DuckDB usage store" in result.stderr
    assert "Fix: close the program that has it open" in result.stderr


@pytest.fixture
def ingested(container: Container, tenants: tuple[str, str]) -> Iterator[None]:
    from meterbill.domain.usage import UsageEvent

    container.usage_store.insert([UsageEvent(f"v{i}", "acme", "queries", 100, NOW, NOW)
                                  for i in range(7)])
    yield


@pytest.mark.usefixtures("ingested")
def test_tenants_usage_command(cli: Run) -> None:
    result = cli("tenants", "usage", "acme", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["used"] == 700 and data["plan"] is None
    assert data["sentence"] == "You used 700 queries this month (no plan, so none of it is billed)"
    people = cli("tenants", "usage", "acme")
    assert "You used 700 queries" in people.output and "Per day" in people.output
    bad = cli("tenants", "usage", "acme", "--period", "2026-13")
    assert bad.exit_code == 1 and "YYYY-MM" in bad.stderr
