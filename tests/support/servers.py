"""The real `kcc` command in a process of its own, and a real `kcc serve` for the tests that need
one (the CLI over HTTP, the pages in a browser). The environment is always built explicitly, so a
KCC_REDIS_URL or TWILIO_AUTH_TOKEN in the shell that runs the tests changes nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

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
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def kcc_server(
    command: Sequence[str], *, url: str, env: dict[str, str], cwd: Path, startup: float = 30
) -> Iterator[subprocess.Popen[bytes]]:
    """Start the server, wait until /healthz answers (bounded), and always stop it."""
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
    url: str
    env: dict[str, str]  # the server's: `kcc` with it uses the same database (and Redis)


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
        kcc_server([*KCC, "serve", "--port", str(port)], url=url, env=server_env, cwd=cwd),
    ):
        yield KccServer(url=url, env=server_env)
