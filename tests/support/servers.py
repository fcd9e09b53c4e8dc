"""The `kcc` command in-process and in a process of its own, and a real `kcc serve` for the tests
that need one (the CLI over HTTP, the pages in a browser). The environment is always built
explicitly, so a KCC_REDIS_URL or TWILIO_AUTH_TOKEN in the shell that runs the tests changes
nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from typer.testing import CliRunner, Result

from api.cli.main import app
from tests.support.clock import OPEN_TUESDAY
from tests.support.database import sqlite_url
from tests.support.slow import require_slow
from tests.support.staff import Account, new_database_with_staff

OUTER_PREFIXES = ("KCC_", "TWILIO_")  # what Settings reads; never inherited from the shell

_SCRIPT = Path(sys.executable).parent / "kcc"
KCC = (
    [str(_SCRIPT)]
    if _SCRIPT.exists()
    else [
        sys.executable,
        "-c",
        "import sys; from api.cli.main import main; sys.argv[0] = 'kcc'; main()",
    ]
)


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any KCC_/TWILIO_ variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUTER_PREFIXES)}
    env.update(extra)
    return env


def invoke_kcc(*args: str, env: Mapping[str, str], input: str | None = None) -> Result:
    """`kcc ARGS` in-process (typer's runner); a crash (traceback) fails the test rather than
    pass as exit 1."""
    result = CliRunner().invoke(app, list(args), input=input, env=dict(env))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def run_kcc(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the installed `kcc` console script in a real process."""
    return subprocess.run(
        [*KCC, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def kcc_server(
    command: Sequence[str], *, url: str, env: dict[str, str], cwd: Path, startup: float = 30
) -> Iterator[subprocess.Popen[bytes]]:
    """Start the server, wait until /healthz answers (bounded), and always stop it."""
    require_slow("kcc serve")
    log_path = cwd / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            list(command), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + startup
            while True:
                if process.poll() is not None:
                    pytest.fail(
                        f"kcc serve exited with {process.returncode}:\n{log_path.read_text()}"
                    )
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"kcc serve not healthy after {startup} s:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@dataclass(frozen=True)
class KccServer:
    """A running `kcc serve`."""

    url: str
    env: dict[str, str]  # the server's: `kcc` with it uses the same database (and Redis)
    pid: int

    @property
    def database_url(self) -> str:
        return self.env["KCC_DATABASE_URL"]


@contextmanager
def flushed_redis(url: str | None) -> Iterator[None]:
    """The Redis database at `url` emptied before and after (nothing when `url` is None)."""
    if url is not None:
        _flush(url)
    try:
        yield
    finally:
        if url is not None:
            _flush(url)


def _flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@contextmanager
def kcc_serve(cwd: Path, *, redis_url: str | None = None, **env: str) -> Iterator[KccServer]:
    """`kcc serve` on a free port of 127.0.0.1, run in `cwd` with a clean environment (see
    `clean_env`) plus KCC_PUBLIC_URL and `env`. With `redis_url` it uses that Redis database, its
    own: emptied before it starts and after it stops."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_env = clean_env(KCC_PUBLIC_URL=url, **env)
    if redis_url is not None:
        server_env["KCC_REDIS_URL"] = redis_url
    with (
        flushed_redis(redis_url),
        kcc_server(
            [*KCC, "serve", "--port", str(port)], url=url, env=server_env, cwd=cwd
        ) as process,
    ):
        yield KccServer(url=url, env=server_env, pid=process.pid)


@contextmanager
def open_kcc_serve(
    directory: Path,
    *,
    secret_key: str,
    staff: Sequence[Account] = (),
    redis_url: str | None = None,
    database_url: str | None = None,
    **env: str,
) -> Iterator[KccServer]:
    """`kcc serve` (see `kcc_serve`) on the SQLite file of `directory` (or `database_url`), with
    `staff` added to it, its clock starting on the open Tuesday morning (KCC_NOW; it runs on)."""
    database_url = database_url or sqlite_url(directory)
    if staff:
        new_database_with_staff(database_url, *staff)
    with kcc_serve(
        directory,
        redis_url=redis_url,
        KCC_DATABASE_URL=database_url,
        KCC_SECRET_KEY=secret_key,
        KCC_NOW=OPEN_TUESDAY,
        **env,
    ) as served:
        yield served
