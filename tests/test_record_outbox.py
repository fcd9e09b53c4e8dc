"""Call records are never lost because the database was away: they wait in Redis (the outbox,
routing/outbox.py) and are written when it returns, once each, whichever instance drains.

The test runs a PostgreSQL server of its own (initdb into a temporary directory, a free port),
stops it in the middle of the calls and starts it again."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func
from sqlmodel import Session, create_engine, select

from api.cli.phone import Phone
from api.database.schema import upgrade
from ivr.records import CallRecord
from routing import keys
from tests.conftest import AUTH_TOKEN, PUBLIC_URL, need_service
from tests.support.slow import require_slow

pytestmark = pytest.mark.slow  # starts a PostgreSQL server of its own

CALLS_BEFORE = 6  # while the database is up
CALLS_DURING = 5  # while it is stopped: they wait in Redis


def _binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class OwnPostgres:
    """A PostgreSQL server this test started, in a directory of its own."""

    pg_ctl: str
    data: Path
    port: int
    as_user: list[str]  # PostgreSQL refuses to run as root: then as the postgres user

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data.parent}"
        self._ctl("start", "-w", "-o", options, "-l", str(self.data.parent / "server.log"))

    def stop(self) -> None:
        self._ctl("stop", "-w", "-m", "fast")

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, self.pg_ctl, "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    need_service(
        initdb is not None and pg_ctl is not None,
        "PostgreSQL's initdb and pg_ctl",
        "the PostgreSQL server binaries are not installed here (they are in CI)",
    )
    assert initdb is not None and pg_ctl is not None
    require_slow("a PostgreSQL server")
    # Not pytest's tmp_path: its parents are private to this user, and the server may run as
    # another (postgres, when the tests run as root).
    base = Path(tempfile.mkdtemp(prefix="kcc-outbox-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = OwnPostgres(pg_ctl=pg_ctl, data=data, port=_free_port(), as_user=as_user)
    server.start()
    try:
        yield server
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "stop", "-m", "immediate"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


async def a_caller_leaves_the_line(client: httpx.AsyncClient) -> str:
    caller = Phone(client, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN)
    await caller.dial()
    await caller.press("2")
    assert (await caller.press("#")).queue == "kcc-vog_rp"
    assert (await caller.hang_up()).status_code == 200  # the record is made here
    return caller.call_sid


def records_in(url: str) -> tuple[int, int]:
    """Rows, and distinct calls among them."""
    engine = create_engine(url)
    try:
        with Session(engine) as db:
            rows = db.exec(select(func.count()).select_from(CallRecord)).one()
            calls = db.exec(select(func.count(func.distinct(CallRecord.call_sid)))).one()
        return int(rows), int(calls)
    finally:
        engine.dispose()


async def test_records_made_while_the_database_is_stopped_are_written_when_it_is_back(
    own_postgres: OwnPostgres, make_app: Callable[..., FastAPI]
) -> None:
    engine = create_engine(own_postgres.url)
    upgrade(engine)  # what `kcc db upgrade` does
    engine.dispose()
    first, second = make_app(database_url=own_postgres.url), make_app(database_url=own_postgres.url)
    clients = [
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL)
        for app in (first, second)
    ]
    outbox_1, outbox_2 = first.state.services.records, second.state.services.records
    sids: list[str] = []
    for n in range(CALLS_BEFORE):  # the two instances take turns
        sids.append(await a_caller_leaves_the_line(clients[n % 2]))
    assert await outbox_1.flush() and await outbox_2.flush()
    assert records_in(own_postgres.url) == (CALLS_BEFORE, CALLS_BEFORE)

    own_postgres.stop()
    for n in range(CALLS_DURING):  # callers notice nothing
        sids.append(await a_caller_leaves_the_line(clients[n % 2]))
    assert not await outbox_1.flush()  # refused: the batch stays in Redis
    assert not await outbox_2.flush()
    assert await outbox_1.waiting() == CALLS_DURING

    own_postgres.start()
    # Both instances drain at once (their timers): one wins the lock, nothing is written twice.
    await asyncio.gather(outbox_1.flush(), outbox_2.flush())
    assert await outbox_1.flush() and await outbox_2.flush()

    assert await outbox_1.waiting() == 0
    total = CALLS_BEFORE + CALLS_DURING
    assert records_in(own_postgres.url) == (total, total)
    assert len(set(sids)) == total
    for client in clients:
        await client.aclose()


async def test_a_batch_written_again_after_a_lost_lock_adds_no_row(
    own_postgres: OwnPostgres, make_app: Callable[..., FastAPI]
) -> None:
    """An instance whose lock expired mid-write leaves the batch in Redis: written again, by it
    or another instance, the records are there once."""
    engine = create_engine(own_postgres.url)
    upgrade(engine)
    engine.dispose()
    app = make_app(database_url=own_postgres.url)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL
    ) as client:
        outbox = app.state.services.records
        await a_caller_leaves_the_line(client)  # the first call reads the live flow's pointer
        assert await outbox.flush()
        own_postgres.stop()
        for _ in range(3):
            await a_caller_leaves_the_line(client)
        # The outbox as an instance that lost its lock mid-write leaves it: copied here.
        items = await app.state.services.redis.lrange(keys.record_outbox(), 0, -1)
        own_postgres.start()
        assert await outbox.flush()
        await app.state.services.redis.rpush(keys.record_outbox(), *items)
        assert await outbox.flush()
    assert records_in(own_postgres.url) == (4, 4)
