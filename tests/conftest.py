"""Shared fixtures: the real Redis and PostgreSQL when they are there (always in CI)."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis.asyncio as aioredis
from fakeredis import FakeAsyncRedis
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import create_engine

from api.cli.phone import Phone
from api.services import make_redis
from api.settings import DEFAULT_FLOW, Settings
from api.web.app import create_app
from routing.clock import FixedClock
from tests.support.clock import TUESDAY_MORNING
from tests.support.database import create_schema, drop_schema, sqlite_url
from tests.support.servers import OUTER_PREFIXES
from tests.support.twilio_stub import TwilioStub

if TYPE_CHECKING:
    from playwright.sync_api import Browser

# The hooks of the rule that a test starting a server or a browser is marked slow: imported, as
# the support modules import that module first (too late for pytest_plugins to rewrite it).
from tests.support.slow import (  # noqa: F401
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_runtest_protocol,
)

pytest_plugins = ["pytester"]  # runs the small suites that test that rule

IN_CI = os.environ.get("CI", "").lower() == "true"
REDIS_URL = os.environ.get("KCC_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
POSTGRES_URL = os.environ.get(
    "KCC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _reachable(url: str, default_port: int) -> bool:
    """Whether the server the test URL names accepts a connection (the URL's host and port, so
    a run pointed at another Redis or PostgreSQL probes that one)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=0.5
        ):
            return True
    except OSError:
        return False


REDIS_UP = _reachable(REDIS_URL, 6379)
POSTGRES_UP = _reachable(POSTGRES_URL, 5432)
# How a missing server is named in a failure or skip.
REDIS_SERVICE = f"Redis at {urlsplit(REDIS_URL).netloc}"
POSTGRES_SERVICE = f"PostgreSQL at {urlsplit(POSTGRES_URL).netloc}"


def missing_service(service: str) -> None:
    """In CI a missing server is a failure; on a laptop the embedded fallback is used."""
    if IN_CI:
        pytest.fail(f"CI=true but {service} is not reachable: start it (see .ci/run)")


def need_service(up: bool, service: str, reason: str | None = None) -> None:
    """Go on when `up`; else fail in CI (see `missing_service`) and skip here, saying `reason`."""
    if up:
        return
    missing_service(service)
    pytest.skip(reason or f"{service} is not running here (it is in CI)")


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    """The real Redis (a database of its own, flushed per test) through the client the service
    uses (routing/pipelined_redis.py), or fakeredis off CI."""
    if REDIS_UP:
        client: aioredis.Redis = make_redis(REDIS_URL)
    else:
        missing_service(REDIS_SERVICE)
        client = FakeAsyncRedis(decode_responses=True)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


def _engine_for(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    if kind == "postgresql":
        need_service(POSTGRES_UP, POSTGRES_SERVICE)
        engine = create_engine(POSTGRES_URL)
        drop_schema(engine)
    else:
        path = tmp_path_factory.mktemp("db") / "kcc.sqlite3"
        engine = create_engine(f"sqlite:///{path}")
    create_schema(engine)  # at the head, as `kcc db upgrade` leaves it
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def db_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """Every database test runs on SQLite and on the real PostgreSQL."""
    engine = _engine_for(request.param, tmp_path_factory)
    yield engine
    if request.param == "postgresql":
        drop_schema(engine)
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = _engine_for("sqlite", tmp_path_factory)
    yield engine
    engine.dispose()


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """For the `kcc` command in-process: no KCC_/TWILIO_ variable from outside; cwd in tmp_path
    (the default DB is relative)."""
    for name in list(os.environ):
        if name.startswith(OUTER_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium for the pages' tests (see tests/support/browser.py)."""
    from tests.support.browser import chromium  # Playwright only where a test needs it

    with chromium() as launched:
        yield launched


# -- the app, with a pinned clock, the real Redis and a SQLite file ---------------------------

PUBLIC_URL = "https://ivr.example.nl"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "0" * 32
SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"


@pytest.fixture
def clock() -> FixedClock:
    """Tuesday 1 December 2026, 10:00 in Amsterdam: the contact centre is open."""
    return FixedClock(TUESDAY_MORNING)


@pytest.fixture(scope="session")
def twilio_stub() -> Iterator[TwilioStub]:
    """A local Twilio REST API: the app's real twilio SDK talks to it, never to Twilio."""
    with TwilioStub(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as stub:
        yield stub


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "twilio_account_sid": ACCOUNT_SID,
        "caller_id": "+31703704900",
        "redis_url": REDIS_URL if REDIS_UP else None,
        "database_url": sqlite_url(tmp_path),
        "public_url": PUBLIC_URL,
        "secret_key": SECRET_KEY,
        "twilio_auth_token": AUTH_TOKEN,
        "flow": DEFAULT_FLOW,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def make_app(
    redis_client: aioredis.Redis, tmp_path: Path, clock: FixedClock, twilio_stub: TwilioStub
) -> AsyncIterator[Callable[..., FastAPI]]:
    """Builds apps on the same Redis database (several apps = several instances)."""
    apps: list[FastAPI] = []
    twilio_stub.reset()

    def factory(**overrides: Any) -> FastAPI:
        overrides.setdefault("twilio_api_base", twilio_stub.base_url)
        app = create_app(make_settings(tmp_path, **overrides), clock=clock)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.state.services.close()


@pytest.fixture
async def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return make_app()


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
        yield client


@pytest.fixture
def phone(http: httpx.AsyncClient) -> Callable[..., Phone]:
    """A new call each time it is called: `phone(caller="+31...")`."""

    def factory(**kwargs: Any) -> Phone:
        return Phone(http, public_url=PUBLIC_URL, auth_token=AUTH_TOKEN, **kwargs)

    return factory
