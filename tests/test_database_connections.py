"""PostgreSQL connections without a pre-ping: a connection the server closed is replaced, and a
read costs the one round trip of its statement (docs/database.md, "Connections")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from api.cli.demo import DEMO_APPLICATIONS
from api.database.engine import make_engine
from ivr.identity.applications import DateOfBirthHasher, SqlApplicationDirectory
from ivr.identity.importer import import_applications
from ivr.identity.lockouts import lockout_of, write_lockouts
from routing.database_reads import autocommit_read
from tests.conftest import POSTGRES_SERVICE, POSTGRES_UP, POSTGRES_URL, need_service
from tests.support.database import create_schema, drop_schema
from tests.support.pg_wire import RoundTripProxy

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SECRET = "test-secret-key-0123456789abcdef0123456789"


@pytest.fixture
def admin() -> Iterator[Engine]:
    """A connection of its own, to end the app's connections as a server restart would."""
    need_service(POSTGRES_UP, POSTGRES_SERVICE)
    engine = create_engine(POSTGRES_URL)
    yield engine
    engine.dispose()


def _service_engine(url: str) -> Engine:
    """The engine the service makes, on a database at this release's schema."""
    engine = make_engine(url)
    drop_schema(engine)
    create_schema(engine)
    return engine


@pytest.fixture
def engine(admin: Engine) -> Iterator[Engine]:
    engine = _service_engine(POSTGRES_URL)
    yield engine
    drop_schema(engine)
    engine.dispose()


def backend_pid(connection: Connection) -> int:
    pid: int = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return pid


def terminate(admin: Engine, pid: int) -> None:
    """End the backend `pid` and wait until it is gone."""
    with admin.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with admin.begin() as connection:
            left = connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar_one()
        if not left:
            return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} did not end")


def lock(engine: Engine, number_key: str, until: datetime) -> None:
    with engine.begin() as connection:
        write_lockouts(
            connection,
            [{"number_key": number_key, "until": until.isoformat()}],
            NOW,
        )


def pooled_pid(engine: Engine) -> int:
    """The backend of the one connection in the pool."""
    return autocommit_read(engine, backend_pid)


def test_a_connection_the_server_closed_in_the_pool_fails_neither_the_next_read_nor_write(
    engine: Engine, admin: Engine
) -> None:
    until = NOW + timedelta(hours=24)
    lock(engine, "number-a", until)
    killed = pooled_pid(engine)
    terminate(admin, killed)
    # A write is not tried twice: it succeeds because the dead connection is refused at checkout.
    lock(engine, "number-b", until)
    assert pooled_pid(engine) != killed
    terminate(admin, pooled_pid(engine))
    assert lockout_of(engine, "number-a", NOW) == int(until.timestamp() * 1000)
    assert lockout_of(engine, "number-b", NOW) == int(until.timestamp() * 1000)


def test_a_read_whose_connection_dies_in_use_is_tried_once_more(
    engine: Engine, admin: Engine
) -> None:
    pids: list[int] = []

    def read(connection: Connection) -> int:
        pid = backend_pid(connection)
        pids.append(pid)
        if len(pids) == 1:
            terminate(admin, pid)  # after the checkout's check: the statement fails
        return backend_pid(connection)

    assert autocommit_read(engine, read) == pids[1] != pids[0]


def test_a_write_whose_connection_dies_in_use_fails(engine: Engine, admin: Engine) -> None:
    with pytest.raises(DBAPIError) as raised, engine.begin() as connection:
        terminate(admin, backend_pid(connection))
        write_lockouts(connection, [{"number_key": "k", "until": NOW.isoformat()}], NOW)
    assert raised.value.connection_invalidated
    lock(engine, "number-c", NOW + timedelta(hours=1))  # the next write gets a new connection


def test_the_identity_check_costs_one_round_trip(admin: Engine) -> None:
    with RoundTripProxy(POSTGRES_URL) as proxy:
        engine = _service_engine(proxy.url)
        try:
            hasher = DateOfBirthHasher(SECRET)
            import_applications(
                DEMO_APPLICATIONS,
                engine=engine,
                hasher=hasher,
                products={"vog_np", "vog_rp", "gva", "name_change"},
                today=date(2026, 11, 28),
            )
            directory = SqlApplicationDirectory(engine, hasher)
            connections = proxy.connections
            trips = []
            for born in (date(1985, 11, 3), date(1985, 11, 4)):  # verified, then a wrong date
                before = proxy.round_trips
                found = directory.check("1234567", born)
                trips.append((found is not None, proxy.round_trips - before))
            assert trips == [(True, 1), (False, 1)]
            assert proxy.connections == connections  # the pooled connection was used
        finally:
            drop_schema(engine)
            engine.dispose()


def test_idle_connections_keep_the_network_path_alive(engine: Engine) -> None:
    # Without a pre-ping, a NAT or firewall that drops an idle connection's state would fail
    # the first statement after a quiet hour; keepalives keep the state and reveal a dead peer
    # to the checkout check.
    with engine.connect() as connection:
        raw: Any = connection.connection.dbapi_connection  # psycopg's connection
        parameters = raw.info.get_parameters()
    assert {name: parameters.get(name) for name in KEEPALIVES} == {
        "keepalives": "1",
        "keepalives_idle": "30",
        "keepalives_interval": "10",
        "keepalives_count": "3",
    }


KEEPALIVES = ("keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count")
