"""Alembic's environment for the kcc schema.

Run through api.database.schema (`kcc db upgrade`, `python -m api.database.schema revision`),
which builds the Alembic configuration in code and hands over an open connection: there is no
alembic.ini. The models' metadata is the target of `revision --autogenerate`.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

# Importing the engine module imports every table module: all tables are on SQLModel.metadata.
from api.database.engine import make_engine

config = context.config


def render_item(kind: str, item: Any, autogen: AutogenContext) -> str | Literal[False]:
    """sqlmodel's string type written as SQLAlchemy's, so revisions import no sqlmodel."""
    if kind == "type" and isinstance(item, AutoString):
        return f"sa.String(length={item.length})" if item.length else "sa.String()"
    return False


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        # SQLite alters a table by copying it: autogenerate writes batch operations, which
        # PostgreSQL runs as plain ALTERs.
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    if context.is_offline_mode():
        raise SystemExit("kcc's migrations run against a database (no --sql mode)")
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        run_migrations(connection)
        return
    url = config.get_main_option("sqlalchemy.url")  # a plain `alembic` run with its own ini
    if not url:
        raise SystemExit("no database: run the migrations with `kcc db upgrade`")
    engine = make_engine(url)
    try:
        with engine.begin() as opened:
            run_migrations(opened)
    finally:
        engine.dispose()


run()
