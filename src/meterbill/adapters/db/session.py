"""Engine and session handling. One `Database` per process, made by `bootstrap.build`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

# The session repositories are built on. Services only pass it from `Database.session()` to
# repository constructors, as an opaque handle: they name it by this alias, not sqlalchemy's.
DbSession: TypeAlias = Session


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long the database may keep a caller waiting (`DATABASE_*` settings).

    PostgreSQL: libpq's `connect_timeout`; the server's `statement_timeout` (0 = none); TCP
    keepalives, so that a peer that went silent while the connection was idle is noticed, and
    `tcp_user_timeout` (as long as the keepalives take to give up), so that one that went
    silent while a query was sent is noticed too; and how long to wait for a pooled
    connection. SQLite: how long to wait for another writer's lock (`busy_timeout`).
    """

    connect_seconds: int = 5
    statement_seconds: float = 30.0
    keepalives_idle_seconds: int = 30
    keepalives_interval_seconds: int = 10
    keepalives_count: int = 3
    pool_seconds: float = 10.0
    sqlite_busy_seconds: float = 30.0

    def libpq(self, options: str | None) -> dict[str, Any]:
        """psycopg's connect arguments; `options` is the URL's own (kept, e.g. search_path)."""
        user_timeout = self.keepalives_idle_seconds + (
            self.keepalives_interval_seconds * self.keepalives_count)
        args: dict[str, Any] = {
            "connect_timeout": self.connect_seconds,
            "keepalives": 1,
            "keepalives_idle": self.keepalives_idle_seconds,
            "keepalives_interval": self.keepalives_interval_seconds,
            "keepalives_count": self.keepalives_count,
            "tcp_user_timeout": user_timeout * 1000,  # milliseconds
        }
        timeout = f"-c statement_timeout={int(self.statement_seconds * 1000)}"
        args["options"] = f"{options} {timeout}" if options else timeout
        return args


class Database:
    def __init__(self, url: str, *, echo: bool = False,
                 timeouts: DatabaseTimeouts | None = None) -> None:
        self.url = url
        self.timeouts = timeouts or DatabaseTimeouts()
        self.engine: Engine = _engine(url, echo, self.timeouts)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _engine(url: str, echo: bool, timeouts: DatabaseTimeouts) -> Engine:
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.get_driver_name() == "psycopg":
        options = parsed.query.get("options")
        if isinstance(options, tuple):
            options = " ".join(options)
        kwargs["connect_args"] = timeouts.libpq(options)
        kwargs["pool_timeout"] = timeouts.pool_seconds
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            # `sqlite:///var/meterbill.db` is relative to the working directory.
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Threads share the file; wait for a writer instead of failing with "database is locked".
        kwargs["connect_args"] = {"timeout": timeouts.sqlite_busy_seconds,
                                  "check_same_thread": False}
    engine = create_engine(parsed, **kwargs)
    if backend == "sqlite":
        busy_ms = int(timeouts.sqlite_busy_seconds * 1000)

        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

        event.listen(engine, "connect", _sqlite_pragmas)
    return engine
