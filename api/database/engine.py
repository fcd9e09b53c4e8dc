"""Database plumbing: the engine, the tables and one transaction per unit of work. The schema
(Alembic revisions, the start-up check) is api/database/schema.py."""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, make_url
from sqlalchemy.exc import DisconnectionError
from sqlmodel import Session, create_engine

from api import accounts, user_admin
from flows import versions
from ivr import records
from ivr.identity import applications, lockouts
from routing import adviser_history, callbacks, monitor_log, transfers

# Importing a table module registers its tables on SQLModel.metadata: the models the migrations
# are compared with (api/database/migrations/env.py, tests/test_migrations.py) need them all.
TABLE_MODULES = (
    accounts,
    records,
    applications,
    adviser_history,
    versions,
    transfers,
    monitor_log,
    user_admin,
    callbacks,
    lockouts,
)

_IN_MEMORY = {"", ":memory:"}


def make_engine(url: str) -> Engine:
    """An engine for a KCC_DATABASE_URL (sqlite:///path or postgresql://...)."""
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        # FastAPI runs sync endpoints in a threadpool, so a connection changes threads.
        connect_args["check_same_thread"] = False
        database = parsed.database or ""
        if database not in _IN_MEMORY and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    elif parsed.drivername in {"postgresql", "postgres"}:
        # Plain postgresql:// means psycopg2 to SQLAlchemy; we ship psycopg 3.
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        # TCP keepalives (libpq's): an idle pooled connection keeps a NAT's or firewall's state
        # alive, and a peer that vanished without a word (a dropped state, a host gone) shows
        # as an error on the socket within about a minute, which the checkout check sees.
        connect_args.update(
            keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3
        )
    # No pre-ping: it cost a round trip (SELECT 1) before every statement's own. A connection
    # the server closed while it sat in the pool is found at checkout by `_closed_by_server`,
    # for free; one that dies in use fails its statement (reads try once more:
    # routing/database_reads.py).
    engine = create_engine(parsed, connect_args=connect_args)
    if backend == "sqlite" and parsed.database not in _IN_MEMORY:
        event.listen(engine, "connect", _sqlite_wal)
    elif backend == "postgresql":
        event.listen(engine, "checkout", _closed_by_server)
    return engine


def _closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled connection the server has closed (a restart, an idle timeout,
    pg_terminate_backend): the pool then replaces it. An idle PostgreSQL connection has nothing
    to read; readable means the server's goodbye (an error message, or the end of the stream)
    is waiting. A server that vanished without a word (a cable, a host gone) is not seen here."""
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("the connection was closed")
    # poll, not select: select fails on descriptors above 1023, which a busy instance has.
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection while it was in the pool")


def _sqlite_wal(connection: Any, _: Any) -> None:
    """Readers do not wait for the writer, and commits need no full sync (a crash may lose the
    last records, never corrupt the file)."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed when the block ends normally, rolled back when it raises."""
    # expire_on_commit=False: objects loaded here are used after the block (e.g. returned by
    # a FastAPI dependency), when there is no session left to reload them.
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
