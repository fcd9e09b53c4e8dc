"""Shared fixtures: the real Redis and PostgreSQL when they are there (always in CI)."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from fakeredis import FakeAsyncRedis
from sqlalchemy import Engine
from sqlmodel import SQLModel, create_engine

IN_CI = os.environ.get("CI", "").lower() == "true"
REDIS_URL = os.environ.get("KCC_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
POSTGRES_URL = os.environ.get(
    "KCC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


REDIS_UP = _reachable("127.0.0.1", 6379)
POSTGRES_UP = _reachable("127.0.0.1", 5432)


def _missing(service: str) -> None:
    """In CI a missing server is a failure; on a laptop the embedded fallback is used."""
    if IN_CI:
        pytest.fail(f"CI=true but {service} is not reachable: start it (see .ci/run)")


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    """The real Redis (a database of its own, flushed per test), or fakeredis off CI."""
    if REDIS_UP:
        client: aioredis.Redis = aioredis.from_url(REDIS_URL, decode_responses=True)
    else:
        _missing("Redis on 127.0.0.1:6379")
        client = FakeAsyncRedis(decode_responses=True)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


def _engine_for(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    if kind == "postgresql":
        if not POSTGRES_UP:
            _missing("PostgreSQL on 127.0.0.1:5432")
            pytest.skip("PostgreSQL is not running here (it is in CI)")
        engine = create_engine(POSTGRES_URL)
        SQLModel.metadata.drop_all(engine)
    else:
        path = tmp_path_factory.mktemp("db") / "kcc.sqlite3"
        engine = create_engine(f"sqlite:///{path}")
    SQLModel.metadata.create_all(engine)
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def db_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """Every database test runs on SQLite and on the real PostgreSQL."""
    engine = _engine_for(request.param, tmp_path_factory)
    yield engine
    if request.param == "postgresql":
        SQLModel.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = _engine_for("sqlite", tmp_path_factory)
    yield engine
    engine.dispose()
