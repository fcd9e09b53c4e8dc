"""A real `kcc serve` process for the tests that need one (CLI over HTTP, the desk in a browser)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


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
