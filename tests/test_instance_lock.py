"""An embedded store serves one process: a second `kcc serve` on the same database refuses to
start and says to set KCC_REDIS_URL; with a shared Redis any number start.

Real `kcc serve` processes on a SQLite file and on the real PostgreSQL (a schema of this test's
own), and the lock itself in-process: the app's lifespan takes it, one-shot commands do not.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from sqlalchemy import text

from api.database.engine import make_engine
from api.database.schema import upgrade
from api.instance_lock import InstanceLocked, lock_embedded_store
from tests.conftest import (
    POSTGRES_SERVICE,
    POSTGRES_UP,
    POSTGRES_URL,
    REDIS_SERVICE,
    REDIS_UP,
    REDIS_URL,
    SECRET_KEY,
    make_settings,
    need_service,
)
from tests.support.database import schema_url, sqlite_url
from tests.support.servers import KccServer, clean_env, flushed_redis, free_port, kcc_serve, run_kcc

pytestmark = pytest.mark.slow  # real `kcc serve` processes


def _serve_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    return clean_env(
        KCC_PUBLIC_URL=f"http://127.0.0.1:{port}",
        KCC_DATABASE_URL=database_url,
        KCC_SECRET_KEY=SECRET_KEY,
        **extra,
    )


def _first_server(database_url: str, cwd: Path, **extra: str) -> AbstractContextManager[KccServer]:
    """`kcc serve` on a free port, healthy (see `kcc_serve`); its log in `cwd`."""
    cwd.mkdir(exist_ok=True)
    return kcc_serve(cwd, KCC_DATABASE_URL=database_url, KCC_SECRET_KEY=SECRET_KEY, **extra)


def _second_server_refused(database_url: str) -> subprocess.CompletedProcess[str]:
    """`kcc serve` on the same database: it must stop by itself (bounded), never serve."""
    port = free_port()
    try:
        return run_kcc("serve", "--port", str(port), env=_serve_env(database_url, port), timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the second kcc serve started on the same database and embedded store")


def _assert_refused(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    assert "KCC_REDIS_URL" in result.stderr
    assert "another kcc-ivr instance already serves" in result.stderr
    assert "Uvicorn running" not in result.stderr


# -- SQLite ------------------------------------------------------------------------------------


def test_a_second_serve_on_the_same_sqlite_file_refuses_naming_kcc_redis_url(
    tmp_path: Path,
) -> None:
    database_url = sqlite_url(tmp_path)
    with _first_server(database_url, tmp_path) as first:
        lock_file = tmp_path / "kcc.sqlite3.instance.lock"
        assert lock_file.read_text().strip() == str(first.pid)

        second = _second_server_refused(database_url)

        _assert_refused(second)
        assert str(tmp_path / "kcc.sqlite3") in second.stderr
        assert f"process {first.pid}" in second.stderr
        # One-shot commands on the same database are not instances: they run meanwhile.
        added = run_kcc(
            "users", "add", "j.devries", "--role", "supervisor",
            env={**_serve_env(database_url, 1), "KCC_PASSWORD": "correct horse battery"},
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    # Stopped, the first let go: the next one starts.
    with _first_server(database_url, tmp_path):
        pass


def test_serves_on_the_same_sqlite_file_with_a_shared_redis_all_start(tmp_path: Path) -> None:
    need_service(REDIS_UP, REDIS_SERVICE)
    database_url = sqlite_url(tmp_path)
    with (
        flushed_redis(REDIS_URL),
        _first_server(database_url, tmp_path / "a", KCC_REDIS_URL=REDIS_URL),
        _first_server(database_url, tmp_path / "b", KCC_REDIS_URL=REDIS_URL),
    ):
        assert not (tmp_path / "kcc.sqlite3.instance.lock").exists()


# -- PostgreSQL with the embedded Redis --------------------------------------------------------


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """POSTGRES_URL with a schema of this test's own, dropped afterwards."""
    need_service(POSTGRES_UP, POSTGRES_SERVICE)
    schema = f"instance_lock_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        url = schema_url(POSTGRES_URL, schema)
        engine = make_engine(url)
        try:
            upgrade(engine)  # PostgreSQL is never migrated by the service: `kcc db upgrade` first
        finally:
            engine.dispose()
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def test_a_second_serve_on_the_same_postgresql_database_refuses(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    with _first_server(postgres_schema_url, tmp_path):
        second = _second_server_refused(postgres_schema_url)

        _assert_refused(second)
        assert "PostgreSQL database" in second.stderr
    with _first_server(postgres_schema_url, tmp_path):  # released when the first stopped
        pass


def test_the_advisory_lock_is_per_schema_and_released(postgres_schema_url: str) -> None:
    first = lock_embedded_store(None, postgres_schema_url)
    assert first is not None
    try:
        with pytest.raises(InstanceLocked, match="KCC_REDIS_URL"):
            lock_embedded_store(None, postgres_schema_url)
        other = lock_embedded_store(None, POSTGRES_URL)  # another schema: another store
        assert other is not None
        other.release()
        assert lock_embedded_store(REDIS_URL, postgres_schema_url) is None  # shared store
    finally:
        first.release()
    again = lock_embedded_store(None, postgres_schema_url)
    assert again is not None
    again.release()


# -- the lock in-process ------------------------------------------------------------------------


def test_the_file_lock_is_held_until_released(tmp_path: Path) -> None:
    database_url = sqlite_url(tmp_path)
    held = lock_embedded_store(None, database_url)
    assert held is not None
    with pytest.raises(InstanceLocked, match="KCC_REDIS_URL"):
        lock_embedded_store(None, database_url)
    held.release()
    again = lock_embedded_store(None, database_url)
    assert again is not None
    again.release()
    assert lock_embedded_store("redis://127.0.0.1:6379/0", database_url) is None
    assert lock_embedded_store(None, "sqlite:///:memory:") is None
    assert lock_embedded_store(None, "sqlite://") is None


async def test_the_app_takes_the_lock_for_its_lifespan_only(tmp_path: Path) -> None:
    """Building an app (the test suite's, `kcc call`'s) takes nothing; serving one does."""
    from api.web.app import create_app

    settings = make_settings(tmp_path, redis_url=None)
    serving = create_app(settings)
    free = lock_embedded_store(None, settings.database_url)  # built, not served: not held
    assert free is not None
    free.release()
    async with serving.router.lifespan_context(serving):
        with pytest.raises(InstanceLocked, match="KCC_REDIS_URL"):
            lock_embedded_store(None, settings.database_url)
    held = lock_embedded_store(None, settings.database_url)  # released at shutdown
    assert held is not None
    refused = create_app(settings)
    with pytest.raises(InstanceLocked, match="KCC_REDIS_URL"):  # and its services are closed
        async with refused.router.lifespan_context(refused):
            pass
    held.release()
