"""Test databases: their URLs, and a database at this release's schema made the fast way: the
models' create_all, then marked (stamped) as the head revision, so the start-up check finds it up
to date.

That the two are the same schema is what tests/test_migrations.py proves: every revision applied
gives exactly the models' tables, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from api.database import schema


def create_schema(engine: Engine) -> None:
    """The models' tables (those missing) and the head revision in alembic_version."""
    SQLModel.metadata.create_all(engine)
    with engine.begin() as connection:
        MigrationContext.configure(connection).stamp(schema.script_directory(), schema.head())


def drop_schema(engine: Engine) -> None:
    """Every table of the models, and alembic_version."""
    SQLModel.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {schema.VERSION_TABLE}"))


def sqlite_url(directory: Path) -> str:
    """The URL of the SQLite file `kcc.sqlite3` in `directory`."""
    return f"sqlite:///{directory}/kcc.sqlite3"


def schema_url(url: str, schema: str) -> str:
    """The PostgreSQL `url` with `schema` first on the search path: a schema of the test's own."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"
