"""`meterbill serve` in sandbox mode says what it prepared: the migration and the catalog sync."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from meterbill.adapters.db.migrate import Migrations
from meterbill.entrypoints.cli import CliContext
from meterbill.entrypoints.cli import server as server_module

from ..conftest import make_settings
from .conftest import run_cli


def test_serve_logs_the_migration_and_the_catalog_sync(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'var' / 'meterbill.db'}")
    monkeypatch.setattr(server_module.uvicorn, "run", lambda app, **kwargs: None)
    head = Migrations().head

    def serve() -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="meterbill.cli"):
            result = run_cli(CliContext(settings_factory=lambda: settings), "serve", "--json")
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return [r.getMessage() for r in caplog.records if "sandbox mode:" in r.getMessage()]

    first = serve()
    assert len(first) == 1 and re.fullmatch(
        rf"sandbox mode: migrated the database to revision {head} \(from none\); plan catalog "
        r"synced to the sandbox \([1-9]\d* change\(s\), 0 unchanged\)", first[0]), first
    again = serve()  # the same database and sandbox file: nothing left to do
    assert len(again) == 1 and re.fullmatch(
        rf"sandbox mode: the database is at revision {head} already; plan catalog synced to "
        r"the sandbox \(0 change\(s\), [1-9]\d* unchanged\)", again[0]), again

