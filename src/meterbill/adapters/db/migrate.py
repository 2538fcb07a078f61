"""Run Alembic programmatically: the scripts ship inside the package, no alembic.ini needed.

`Migrations` answers "is this database's schema the one this code needs?": the newest revision
the shipped scripts know (read from the scripts once) against the database's current one (one
query), so `/health` can ask on every probe and `serve` before it starts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
VERSION_TABLE = "alembic_version"  # Alembic's default; env.py does not change it
# Any fixed 64-bit number: the PostgreSQL advisory lock that lets one process migrate at a time.
_MIGRATION_LOCK_KEY = 0x6D65746572  # "meter"

SchemaState = Literal["current", "behind", "unknown"]


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        # '%' is an interpolation character in Alembic's config parser.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database behind `engine` (env.py uses this connection, not Settings)."""
    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several processes started with AUTO_MIGRATE=true would otherwise all create the
            # same tables; the lock is held to the commit, and the next one finds the work done.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": _MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None before the first migration)."""
    with engine.connect() as connection:
        return _read_revision(connection)


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None  # None: never migrated
    head: str
    state: SchemaState  # unknown: a revision these scripts do not have (newer code migrated)

    @property
    def behind(self) -> bool:
        return self.state == "behind"

    def describe(self) -> str:
        if self.state == "current":
            return f"the database schema is at revision {self.head} (head)"
        if self.current is None:
            return (f"the database schema was never migrated (this meterbill needs revision "
                    f"{self.head})")
        if self.state == "behind":
            return (f"the database schema is at revision {self.current}, behind this "
                    f"meterbill's {self.head}")
        return (f"the database schema is at revision {self.current}, which this meterbill "
                f"does not know (its newest is {self.head}): a newer version migrated it")

    def to_dict(self) -> dict[str, Any]:
        return {"current": self.current, "head": self.head, "state": self.state}


class Migrations:
    """The shipped migration scripts, read once, and the schema status of a database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._head: str | None = None
        self._known: frozenset[str] = frozenset()

    @property
    def head(self) -> str:
        with self._lock:
            if self._head is None:
                from alembic.script import ScriptDirectory

                scripts = ScriptDirectory.from_config(alembic_config())
                head = scripts.get_current_head()
                if head is None:
                    raise RuntimeError(f"no migration scripts in {MIGRATIONS}")
                self._known = frozenset(s.revision for s in scripts.walk_revisions())
                self._head = head
            return self._head

    def status(self, engine: Engine) -> SchemaStatus:
        """Where the database stands; raises SQLAlchemy's error when it cannot be reached."""
        head = self.head
        current = current_revision(engine)
        if current == head:
            state: SchemaState = "current"
        elif current is None or current in self._known:
            state = "behind"
        else:
            state = "unknown"
        return SchemaStatus(current, head, state)

    def upgrade(self, engine: Engine) -> None:
        upgrade(engine)


def _read_revision(connection: Connection) -> str | None:
    # One query in the usual case; a database never migrated has no version table, which is
    # only then confirmed (a second query) so that other failures still raise.
    try:
        rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    except DBAPIError:
        connection.rollback()
        if inspect(connection).has_table(VERSION_TABLE):
            raise
        return None
    versions = sorted(str(row[0]) for row in rows)
    # Alembic keeps one row per head; the shipped history is linear, so more than one is a
    # database this code did not migrate: report them all rather than pick one.
    return ",".join(versions) or None
