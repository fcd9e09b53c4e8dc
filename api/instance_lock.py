"""One process per database while the Redis store is embedded.

Without KCC_REDIS_URL the queue, the advisers' states and the calls in progress live in an
in-process store (fakeredis). A second instance on the same database would have a queue and
advisers of its own, and calls would be split between them without anyone noticing. So the
service holds a lock for as long as it runs:

- SQLite: an OS file lock (`flock`) on a file next to the database (`kcc.sqlite3.instance.lock`),
  released by the OS when the process ends, however it ends;
- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) per database and schema, on
  a connection of its own kept open, released when that connection closes.

With KCC_REDIS_URL there is no lock: any number of instances share the store. One-shot commands
(`kcc flows publish`, `kcc users add`, `kcc applications import`, `kcc call`) take none either.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, make_url, text
from sqlalchemy.pool import NullPool
from sqlmodel import create_engine

# The first key of the advisory lock ("kcc" in ASCII); the second is the schema's hash.
ADVISORY_CLASS = 0x6B6363
_IN_MEMORY = {"", ":memory:"}


class InstanceLocked(RuntimeError):
    """Another process serves this database on an embedded store."""


class InstanceLock(Protocol):
    def release(self) -> None: ...


def refusal(where: str) -> str:
    return (
        f"another kcc-ivr instance already serves {where} with the embedded store "
        "(KCC_REDIS_URL unset), which lives in one process: a second one would split the queue "
        "and the advisers. Stop the other instance, or set KCC_REDIS_URL (a shared Redis) for "
        "every instance."
    )


class FileLock:
    """`flock` on `path`; the process id is written in it for whoever looks."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _read_pid(path)
            where = what + (f" (process {holder}, {path})" if holder else f" ({path})")
            raise InstanceLocked(refusal(where)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_pid(path: Path) -> str:
    with contextlib.suppress(OSError):
        pid = path.read_text(encoding="ascii", errors="replace").strip()
        if pid.isdigit():
            return pid
    return ""


class AdvisoryLock:
    """`pg_try_advisory_lock` on a connection of its own, open until `release`."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        if url.drivername in {"postgresql", "postgres"}:
            url = url.set(drivername="postgresql+psycopg")
        self._engine = create_engine(url, poolclass=NullPool)
        self._connection: Connection | None = None
        try:
            connection = self._engine.connect()
            locked, schema = connection.execute(
                text(
                    "SELECT pg_try_advisory_lock(:class, hashtext(current_schema())), "
                    "current_database() || '.' || current_schema()"
                ),
                {"class": ADVISORY_CLASS},
            ).one()
            connection.commit()  # the lock is the session's; no transaction stays open
        except BaseException:
            self._engine.dispose()
            raise
        if not locked:
            connection.close()
            self._engine.dispose()
            raise InstanceLocked(refusal(f"the PostgreSQL database {schema}"))
        self._connection = connection

    def release(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # a closed connection has let go already
                self._connection.execute(
                    text("SELECT pg_advisory_unlock(:class, hashtext(current_schema()))"),
                    {"class": ADVISORY_CLASS},
                )
                self._connection.commit()
            self._connection.close()
            self._connection = None
        self._engine.dispose()


def lock_embedded_store(redis_url: str | None, database_url: str) -> InstanceLock | None:
    """The lock this process holds while it serves on the embedded store; None when the store is
    shared (KCC_REDIS_URL) or the database is this process' own (in memory).

    Raises InstanceLocked when another process holds it."""
    if redis_url is not None:
        return None
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if database in _IN_MEMORY or database.startswith("file:"):
            return None
        path = Path(database).resolve()
        return FileLock(Path(f"{path}.instance.lock"), f"the SQLite database {path}")
    if backend == "postgresql":
        return AdvisoryLock(database_url)
    return None
