"""Alembic environment. The URL comes from the caller's connection or from Settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from meterbill.adapters.db.models import Base, load_all_models

load_all_models()
target_metadata = Base.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only alter tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        from meterbill.config import Settings

        url = Settings().database_url
    from meterbill.adapters.db.session import Database

    engine = Database(url).engine if url.startswith("sqlite") else create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


def run_migrations_offline() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        from meterbill.config import Settings

        url = Settings().database_url
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
