"""`Migrations`: where a database's schema stands against the shipped scripts, and migrating
from several processes at once (what AUTO_MIGRATE=true does when they all start together)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from meterbill.adapters.db.migrate import Migrations, current_revision, upgrade
from meterbill.adapters.db.session import Database


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def test_the_states_of_a_schema(db: Database) -> None:
    migrations = Migrations()
    head = migrations.head
    never = migrations.status(db.engine)
    assert (never.current, never.head, never.state, never.behind) == (None, head, "behind", True)
    assert "never migrated" in never.describe()

    upgrade(db.engine, "0005")
    behind = migrations.status(db.engine)
    assert (behind.current, behind.state) == ("0005", "behind")
    assert f"revision 0005, behind this meterbill's {head}" in behind.describe()

    migrations.upgrade(db.engine)
    current = migrations.status(db.engine)
    assert (current.current, current.state, current.behind) == (head, "current", False)
    assert current.to_dict() == {"current": head, "head": head, "state": "current"}

    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    newer = migrations.status(db.engine)
    assert (newer.current, newer.state, newer.behind) == ("9999", "unknown", False)
    assert "does not know" in newer.describe()


def test_an_unreachable_database_raises_rather_than_reading_as_never_migrated() -> None:
    db = Database("postgresql+psycopg://meterbill:pw@127.0.0.1:1/meterbill")
    try:
        with pytest.raises(Exception, match="(?i)connect"):
            Migrations().status(db.engine)
    finally:
        db.dispose()


# Each process waits for the same moment, then migrates: what several `serve` processes with
# AUTO_MIGRATE=true do when a deploy starts them together. (Threads would not do: Alembic's
# `op` and `context` are per process.)
_MIGRATE_AT = """
import sys, time
from meterbill.adapters.db.migrate import upgrade
from meterbill.adapters.db.session import Database
database = Database(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
upgrade(database.engine)
database.dispose()
"""


@pytest.mark.postgres
def test_processes_starting_together_migrate_once(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite databases are one file on one host: migrate them before serving")
    at = str(time.time() + 3)
    processes = [subprocess.Popen([sys.executable, "-c", _MIGRATE_AT, database_url, at],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
    errors = []
    for process in processes:
        try:
            _, stderr = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        if process.returncode != 0:
            errors.append([line for line in stderr.splitlines() if "Error" in line][-1:])
    assert errors == []
    database = Database(database_url)
    try:
        assert current_revision(database.engine) == Migrations().head
    finally:
        database.dispose()
