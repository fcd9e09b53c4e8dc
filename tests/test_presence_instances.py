"""Presence across app instances: two `kcc serve` processes on one Redis and one database. A
desk whose event stream closes on one instance makes the adviser AWAY as the other sees it, once
in the state history, and the desk coming back on the other instance makes them available."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from api.database.engine import make_engine
from routing.adviser_history import AdviserStateChange
from tests.conftest import REDIS_SERVICE, REDIS_UP, REDIS_URL, SECRET_KEY, need_service
from tests.support import staff
from tests.support.servers import KCC, KccServer, free_port, kcc_server, open_kcc_serve

pytestmark = pytest.mark.slow  # two real `kcc serve` processes

PASSWORD = "correct horse battery staple"
SUPERVISOR = staff.supervisor("s.jansen", PASSWORD)
GRACE_SECONDS = 2


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KccServer, KccServer]]:
    need_service(REDIS_UP, REDIS_SERVICE, "two instances share the real Redis")
    directory: Path = tmp_path_factory.mktemp("instances")
    with open_kcc_serve(
        directory,
        secret_key=SECRET_KEY,
        staff=[SUPERVISOR],
        redis_url=REDIS_URL,
        KCC_PRESENCE_GRACE_SECONDS=str(GRACE_SECONDS),
    ) as first:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**first.env, "KCC_PUBLIC_URL": url}
        second_dir = directory / "second"
        second_dir.mkdir()
        with kcc_server(
            [*KCC, "serve", "--port", str(port)], url=url, env=env, cwd=second_dir
        ) as process:
            yield first, KccServer(url=url, env=env, pid=process.pid)


def status_on(server: KccServer, headers: dict[str, str], name: str) -> str:
    advisers = httpx.get(f"{server.url}/api/advisers", headers=headers).raise_for_status().json()
    return str(next(a["status"] for a in advisers if a["name"] == name))


def wait_for(server: KccServer, headers: dict[str, str], name: str, wanted: str) -> float:
    start = time.monotonic()
    while (state := status_on(server, headers, name)) != wanted:
        assert time.monotonic() - start < 20, f"{name} is {state}, not {wanted}"
        time.sleep(0.1)
    return time.monotonic() - start


class Desk:
    """A desk tab's event stream, held open in a thread until `close`."""

    def __init__(self, server: KccServer, headers: dict[str, str], tab: str) -> None:
        self._open = threading.Event()
        self._close = threading.Event()
        url = f"{server.url}/api/advisers/me/events?desk={tab}"
        self._thread = threading.Thread(target=self._hold, args=(url, headers), daemon=True)
        self._thread.start()
        assert self._open.wait(10), "the desk's stream did not open"

    def _hold(self, url: str, headers: dict[str, str]) -> None:
        with httpx.stream("GET", url, headers=headers, timeout=None) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith("event: state"):
                    self._open.set()
                if self._close.is_set():
                    return  # leaving the block closes the connection, as a closed tab does

    def close_at_next_event(self) -> None:
        self._close.set()

    def wait_closed(self) -> None:
        self._thread.join(30)
        assert not self._thread.is_alive()


def test_a_desk_closed_on_one_instance_is_away_on_the_other_and_back_on_either(
    servers: tuple[KccServer, KccServer],
) -> None:
    first, second = servers
    account = staff.adviser(f"adviser{uuid.uuid4().hex[:8]}", PASSWORD)
    staff.add_staff_at(first.database_url, account)
    adviser = staff.signed_in_to(first.url, account)
    supervisor = staff.signed_in_to(second.url, SUPERVISOR)
    desk = Desk(first, adviser, "tab-one")
    desk.close_at_next_event()  # the tab is closed as soon as it shows "available"
    httpx.post(
        f"{second.url}/api/advisers/me/status", json={"status": "available"}, headers=adviser
    ).raise_for_status()
    desk.wait_closed()
    assert status_on(second, supervisor, account.name) == "available"  # within the grace
    waited = wait_for(second, supervisor, account.name, "away")
    assert waited < GRACE_SECONDS + 5
    Desk(second, adviser, "tab-two")  # open until the servers stop
    wait_for(first, supervisor, account.name, "available")
    engine = make_engine(first.database_url)
    try:
        deadline = time.monotonic() + 10
        while True:
            with Session(engine) as session:
                states = session.exec(
                    select(AdviserStateChange.state)
                    .where(AdviserStateChange.adviser == account.name)
                    .order_by(AdviserStateChange.id)  # type: ignore[arg-type]
                ).all()
            if len(states) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        engine.dispose()
    assert states == ["available", "away", "available"]
