"""The demo's terminal phone (`kcc call --hold --url`) follows what the desk does.

A real `kcc serve` with the simulated telephony of the demo; the terminal phone in a process of
its own; the adviser works through the desk's API (what the desk page's buttons send).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator

from api.settings import PLACEHOLDER_AUTH_TOKEN
from tests.conftest import REDIS_UP, REDIS_URL, SECRET_KEY
from tests.support import staff
from tests.support.servers import KCC, KccServer, clean_env, open_kcc_serve

pytestmark = pytest.mark.slow  # a real `kcc serve` and `kcc call` processes

PASSWORD = "correct horse battery staple"
VOG_RP = "2 #"  # the keys to the VOG RP queue


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KccServer]:
    """The embedded demo's telephony (placeholder token), open for calls."""
    with open_kcc_serve(
        tmp_path_factory.mktemp("terminal-phone"),
        secret_key=SECRET_KEY,
        redis_url=REDIS_URL if REDIS_UP else None,
    ) as served:
        yield served


@pytest.fixture
def adviser(server: KccServer) -> Iterator[dict[str, str]]:
    """A new adviser (all products), available; signed off afterwards."""
    account = staff.adviser(f"adviser{uuid.uuid4().hex[:8]}", PASSWORD)
    staff.add_staff_at(server.database_url, account)
    headers = staff.signed_in_to(server.url, account)
    status(server, headers, "available")
    yield headers
    httpx.post(f"{server.url}/api/advisers/me/status", json={"status": "offline"}, headers=headers)


def status(server: KccServer, headers: dict[str, str], wanted: str) -> None:
    response = httpx.post(
        f"{server.url}/api/advisers/me/status", json={"status": wanted}, headers=headers
    )
    response.raise_for_status()


def me(server: KccServer, headers: dict[str, str]) -> dict[str, Any]:
    answer: dict[str, Any] = (
        httpx.get(f"{server.url}/api/advisers/me", headers=headers).raise_for_status().json()
    )
    return answer


def wait_for_state(server: KccServer, headers: dict[str, str], wanted: str) -> None:
    deadline = time.monotonic() + 20
    while (state := me(server, headers)["status"]) != wanted:
        assert time.monotonic() < deadline, f"the adviser is {state}, not {wanted}"
        time.sleep(0.1)


def call(server: KccServer, hold: int) -> subprocess.Popen[str]:
    env = clean_env(PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [*KCC, "call", "--url", server.url, "--keys", VOG_RP, "--hold", str(hold)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def test_the_terminal_phone_hears_the_adviser_answer_and_hang_up(
    server: KccServer, adviser: dict[str, str]
) -> None:
    started = time.monotonic()
    phone = call(server, hold=120)
    try:
        wait_for_state(server, adviser, "offered")
        httpx.post(f"{server.url}/api/advisers/me/answer", headers=adviser).raise_for_status()
        wait_for_state(server, adviser, "on_call")
        httpx.post(f"{server.url}/api/advisers/me/hang-up", headers=adviser).raise_for_status()
        out, err = phone.communicate(timeout=20)
    finally:
        phone.kill()
    assert phone.returncode == 0, err
    assert time.monotonic() - started < 60  # ended by the desk, not by the hold time
    lines = out.splitlines()
    answered = lines.index("-- an adviser answers: you are talking")
    assert lines[answered + 1 :] == ["-- the adviser hangs up; the line goes dead"]
    assert me(server, adviser)["status"] == "wrap_up"


def test_a_caller_who_hangs_up_in_the_terminal_ends_the_desks_call(
    server: KccServer, adviser: dict[str, str]
) -> None:
    phone = call(server, hold=5)
    try:
        wait_for_state(server, adviser, "offered")
        httpx.post(f"{server.url}/api/advisers/me/answer", headers=adviser).raise_for_status()
        out, err = phone.communicate(timeout=30)
    finally:
        phone.kill()
    assert phone.returncode == 0, err
    assert "-- an adviser answers: you are talking" in out
    assert out.splitlines()[-1] == "-- you hang up"
    wait_for_state(server, adviser, "wrap_up")  # the desk's call ended with the caller's


def test_the_call_events_need_the_calls_signature(server: KccServer) -> None:
    url = f"{server.url}/demo/calls/CA{'0' * 32}/events"
    assert httpx.get(url).status_code == 403
    wrong = RequestValidator("not-the-token").compute_signature(url, {})
    response = httpx.get(url, headers={"X-Twilio-Signature": wrong})
    assert (response.status_code, response.json()["code"]) == (403, "bad_signature")
    right = RequestValidator(PLACEHOLDER_AUTH_TOKEN).compute_signature(url, {})
    with httpx.stream("GET", url, headers={"X-Twilio-Signature": right}) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines) == "event: listening"
