"""Redis behind Sentinel for the failover tests: a master, its replica and one Sentinel, each a
real `redis-server` process on a free port, in a directory of the test's own. Short Sentinel
timeouts (down after 1 s, failover timeout 3 s) keep a failover within a few seconds."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.conftest import need_service
from tests.support.servers import free_port
from tests.support.slow import require_slow

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


@dataclass
class SentinelSet:
    directory: Path
    servers: dict[int, subprocess.Popen[bytes]]  # Redis servers by port
    sentinel_port: int
    sentinel: subprocess.Popen[bytes]
    binary: str
    processes: list[subprocess.Popen[bytes]]  # everything started, stopped at the end

    def standalone(self) -> int:
        """Another Redis server, outside the Sentinel's watch: its port."""
        port = free_port()
        self.processes.append(_redis(self.binary, port, self.directory))
        _wait(f"Redis on {port}", lambda: self.server(port).ping(), 10)
        return port

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{MASTER_NAME}/0"

    def ask_sentinel(self, *command: str) -> object:
        with redis.Redis(port=self.sentinel_port, socket_timeout=2, decode_responses=True) as r:
            return r.execute_command(*command)

    def master_port(self) -> int:
        """The master's port as the Sentinel names it."""
        _, port = self.ask_sentinel("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)  # type: ignore[misc]
        return int(port)

    async def switch_to(self, port: int, seconds: float = 10) -> float:
        """Waits until the Sentinel names `port` master; the moment it saw that (monotonic)."""
        deadline = time.monotonic() + seconds
        while self.master_port() != port:
            if time.monotonic() > deadline:
                pytest.fail(f"the Sentinel did not switch to {port} within {seconds} s")
            await asyncio.sleep(0.02)
        return time.monotonic()

    def replica_port(self) -> int:
        master = self.master_port()
        (port,) = (port for port in self.servers if port != master)
        return port

    def server(self, port: int) -> redis.Redis:
        """A plain client of one server (close it)."""
        return redis.Redis(port=port, socket_timeout=2, decode_responses=True)

    def kill(self, port: int) -> None:
        """The server dies at once (SIGKILL): no goodbye to its clients or its replica."""
        process = self.servers.pop(port)
        process.kill()
        process.wait(timeout=10)


def _wait(what: str, ready: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if callable(ready) and ready():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {seconds} s")
        time.sleep(0.05)


def _start(binary: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [binary, *args], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )


def _redis(binary: str, port: int, directory: Path, *extra: str) -> subprocess.Popen[bytes]:
    return _start(
        binary, directory / f"redis-{port}.log",
        "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--repl-diskless-sync-delay", "0", "--dir", str(directory), *extra,
    )  # fmt: skip


@contextmanager
def sentinel_set(directory: Path) -> Iterator[SentinelSet]:
    """Started, replicating and watched by the Sentinel; every process stopped at the end."""
    require_slow("redis-server processes")
    binary = shutil.which("redis-server") or ""
    # In CI a missing redis-server fails the test; on a laptop without it, it is skipped.
    need_service(bool(binary), "redis-server (the Debian package redis-server)")
    master, replica, sentinel_port = free_port(), free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        servers = {master: _redis(binary, master, directory)}
        processes.append(servers[master])
        servers[replica] = _redis(
            binary, replica, directory, "--replicaof", "127.0.0.1", str(master)
        )
        processes.append(servers[replica])

        def linked() -> bool:
            with redis.Redis(port=replica, socket_timeout=2, decode_responses=True) as r:
                return r.info("replication").get("master_link_status") == "up"

        _wait("the replica's link to the master", linked, 10)
        config = directory / "sentinel.conf"  # the Sentinel rewrites it: a file of its own
        config.write_text(
            f"port {sentinel_port}\nbind 127.0.0.1\ndir {directory}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
        )
        sentinel = _start(binary, directory / "sentinel.log", str(config), "--sentinel")
        processes.append(sentinel)
        made = SentinelSet(directory, servers, sentinel_port, sentinel, binary, processes)

        def watched() -> bool:
            # Known and heard from (its INFO read): only then may it be promoted.
            with redis.Redis(port=sentinel_port, socket_timeout=2, decode_responses=True) as r:
                replicas = r.sentinel_slaves(MASTER_NAME)
            return [(r["port"], r["flags"], r["master-link-status"]) for r in replicas] == [
                (replica, "slave", "ok")
            ]

        _wait("the Sentinel to know the master and its replica", watched, 10)
        yield made
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
