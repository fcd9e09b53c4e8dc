"""Reads of one statement, in one round trip.

Such a read needs no transaction: on an AUTOCOMMIT connection the driver sends no BEGIN before
it and no ROLLBACK after it, which were two of its three round trips (docs/database.md,
"Connections"). The engine has no pre-ping (api/database/engine.py checks the socket at checkout
instead, for free), so a connection that dies after that check fails its statement: a read is
then tried once more on a fresh connection. Writes keep their transactions and are not retried
here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")


def autocommit_read(engine: Engine, work: Callable[[Connection], T]) -> T:
    """`work(connection)` on an AUTOCOMMIT connection; once more when the connection was dead.

    `work` must be a read of one statement: without a transaction, two statements could see two
    different states of the database."""
    try:
        return _autocommit(engine, work)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    # The pool has dropped the dead connection; the next one is checked at checkout.
    return _autocommit(engine, work)


def _autocommit(engine: Engine, work: Callable[[Connection], T]) -> T:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return work(connection)
