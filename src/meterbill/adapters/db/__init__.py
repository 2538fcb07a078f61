"""The database: SQLAlchemy 2 models, repositories, sessions and Alembic migrations."""
