"""Telephony: the real twilio SDK against a Twilio-compatible stub server, retries and all."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import random
import re
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from routing.telephony import (
    CALL_NOT_IN_PROGRESS,
    NewParticipant,
    ParticipantChange,
    RecordingTelephony,
    Telephony,
    TelephonyError,
    TwilioTelephony,
)
from tests.support.twilio_stub import TwilioStub

CALLER = "CA" + "1" * 32
CONNECT_URL = "https://kcc.example/twilio/connect?adviser=a1"
CALLBACK_NUMBER = "+31612345678"
KCC_NUMBER = "+31881234567"


class FakeSleep:
    """Records the back-off delays instead of waiting them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture(scope="module")
def running_stub() -> Iterator[TwilioStub]:
    with TwilioStub() as stub:
        yield stub


@pytest.fixture
def stub(running_stub: TwilioStub) -> TwilioStub:
    running_stub.reset()  # one server for the module (start/stop costs ~0.3 s), fresh state
    return running_stub


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


def make_telephony(
    stub: TwilioStub,
    sleep: FakeSleep,
    *,
    auth_token: str | None = None,
    timeout: float = 3.0,
    backoff: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0),
) -> TwilioTelephony:
    return TwilioTelephony(
        account_sid=stub.account_sid,
        auth_token=auth_token or stub.auth_token,
        api_base=stub.base_url,
        timeout=timeout,
        backoff=backoff,
        sleep=sleep,
    )


@pytest.fixture
async def telephony(stub: TwilioStub, sleep: FakeSleep) -> AsyncIterator[TwilioTelephony]:
    telephony = make_telephony(stub, sleep)
    yield telephony
    await telephony.aclose()


async def test_redirect_posts_url_and_method_to_twilio_with_basic_auth(
    stub: TwilioStub, telephony: TwilioTelephony, sleep: FakeSleep
) -> None:
    await telephony.redirect(CALLER, CONNECT_URL)

    [update] = stub.updates_for(CALLER)
    assert update.path == f"/2010-04-01/Accounts/{stub.account_sid}/Calls/{CALLER}.json"
    assert update.form == {"Url": CONNECT_URL, "Method": "POST"}
    assert update.auth == (stub.account_sid, stub.auth_token)
    assert update.status == 200
    assert sleep.delays == []


@pytest.mark.parametrize(
    ("failures", "status", "delays"),
    [(2, 500, [0.2, 0.5]), (1, 429, [0.2])],
    ids=["two 500s, with backoff", "rate limited"],
)
async def test_a_redirect_that_fails_for_a_while_is_retried_until_it_succeeds(
    stub: TwilioStub,
    telephony: TwilioTelephony,
    sleep: FakeSleep,
    failures: int,
    status: int,
    delays: list[float],
) -> None:
    stub.fail_next(failures, status=status)

    await telephony.redirect(CALLER, CONNECT_URL)

    assert [u.status for u in stub.updates_for(CALLER)] == [status] * failures + [200]
    assert sleep.delays == delays


async def test_redirect_gives_up_after_all_attempts_with_a_transient_error(
    stub: TwilioStub, telephony: TwilioTelephony, sleep: FakeSleep
) -> None:
    stub.fail_next(10, status=503)

    with pytest.raises(TelephonyError) as caught:
        await telephony.redirect(CALLER, CONNECT_URL)

    assert caught.value.permanent is False  # the call goes back in the queue
    assert caught.value.status == 503
    assert len(stub.updates_for(CALLER)) == 5  # len(backoff) + 1
    assert sleep.delays == [0.2, 0.5, 1.0, 2.0]


async def test_slow_twilio_times_out_and_the_retry_succeeds(
    stub: TwilioStub, sleep: FakeSleep
) -> None:
    stub.fail_next(1, delay=5.0)  # answered normally, but long after the client gave up
    telephony = make_telephony(stub, sleep, timeout=0.5)
    try:
        await telephony.redirect(CALLER, CONNECT_URL)
    finally:
        await telephony.aclose()

    assert len(stub.updates_for(CALLER)) == 2
    assert sleep.delays == [0.2]


async def test_twilio_hanging_on_every_attempt_raises_transient_error_after_all_attempts(
    stub: TwilioStub, sleep: FakeSleep
) -> None:
    stub.fail_next(3, delay=5.0)
    telephony = make_telephony(stub, sleep, timeout=0.2, backoff=(0.1, 0.4))
    try:
        with pytest.raises(TelephonyError) as caught:
            await telephony.redirect(CALLER, CONNECT_URL)
    finally:
        await telephony.aclose()

    assert caught.value.permanent is False
    assert caught.value.status is None  # no answer came
    assert len(stub.updates_for(CALLER)) == 3
    assert sleep.delays == [0.1, 0.4]


async def test_unreachable_twilio_is_retried_then_transient(sleep: FakeSleep) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    telephony = TwilioTelephony(
        account_sid="AC" + "0" * 32,
        auth_token="secret",
        api_base=f"http://127.0.0.1:{port}",
        sleep=sleep,
    )
    try:
        with pytest.raises(TelephonyError) as caught:
            await telephony.redirect(CALLER, CONNECT_URL)
    finally:
        await telephony.aclose()

    assert caught.value.permanent is False
    assert sleep.delays == [0.2, 0.5, 1.0, 2.0]


@pytest.mark.parametrize("api_base", ["127.0.0.1:8080", "http://"], ids=["no scheme", "no host"])
async def test_a_wrong_api_base_is_permanent_without_retries(
    sleep: FakeSleep, api_base: str
) -> None:
    telephony = TwilioTelephony(
        account_sid="AC" + "0" * 32, auth_token="secret", api_base=api_base, sleep=sleep
    )
    try:
        with pytest.raises(TelephonyError) as caught:
            await telephony.redirect(CALLER, CONNECT_URL)
    finally:
        await telephony.aclose()

    assert caught.value.permanent is True  # a setting to fix, not a network to wait for
    assert sleep.delays == []


async def test_caller_who_hung_up_is_a_permanent_error_without_retries(
    stub: TwilioStub, telephony: TwilioTelephony, sleep: FakeSleep
) -> None:
    stub.hang_up_caller(CALLER)

    with pytest.raises(TelephonyError) as caught:
        await telephony.redirect(CALLER, CONNECT_URL)

    assert caught.value.permanent is True
    assert (caught.value.status, caught.value.twilio_code) == (400, CALL_NOT_IN_PROGRESS)
    assert len(stub.updates_for(CALLER)) == 1
    assert sleep.delays == []


async def test_not_found_is_a_permanent_error_without_retries(
    stub: TwilioStub, telephony: TwilioTelephony, sleep: FakeSleep
) -> None:
    stub.fail_next(1, status=404, call_sid=CALLER)

    with pytest.raises(TelephonyError) as caught:
        await telephony.redirect(CALLER, CONNECT_URL)

    assert caught.value.permanent is True
    assert (caught.value.status, caught.value.twilio_code) == (404, 20404)
    assert sleep.delays == []


async def test_failure_scripted_for_one_call_leaves_other_calls_alone(
    stub: TwilioStub, telephony: TwilioTelephony, sleep: FakeSleep
) -> None:
    other = "CA" + "2" * 32
    stub.fail_next(1, status=500, call_sid=CALLER)

    await telephony.redirect(other, CONNECT_URL)
    await telephony.redirect(CALLER, CONNECT_URL)

    assert [u.status for u in stub.updates_for(other)] == [200]
    assert [u.status for u in stub.updates_for(CALLER)] == [500, 200]


async def test_wrong_auth_token_is_a_permanent_401(stub: TwilioStub, sleep: FakeSleep) -> None:
    telephony = make_telephony(stub, sleep, auth_token="not-the-token")
    try:
        with pytest.raises(TelephonyError) as caught:
            await telephony.redirect(CALLER, CONNECT_URL)
    finally:
        await telephony.aclose()

    assert caught.value.permanent is True
    assert (caught.value.status, caught.value.twilio_code) == (401, 20003)
    assert sleep.delays == []


async def test_dial_out_returns_the_new_call_sid_and_sends_to_from_url_and_callback(
    stub: TwilioStub, telephony: TwilioTelephony
) -> None:
    callback = "https://kcc.example/twilio/callback-status"

    sid = await telephony.dial_out(
        to=CALLBACK_NUMBER, from_=KCC_NUMBER, url=CONNECT_URL, status_callback=callback
    )

    assert re.fullmatch(r"CA[0-9a-f]{32}", sid)
    [create] = stub.creates()
    assert create.path == f"/2010-04-01/Accounts/{stub.account_sid}/Calls.json"
    assert create.status == 201
    assert create.form == {
        "To": CALLBACK_NUMBER,
        "From": KCC_NUMBER,
        "Url": CONNECT_URL,
        "Method": "POST",
        "StatusCallback": callback,
        "StatusCallbackMethod": "POST",
    }
    assert stub.call_status(sid) == "queued"


async def test_dial_out_is_retried_and_retries_are_logged_without_the_number(
    stub: TwilioStub,
    telephony: TwilioTelephony,
    sleep: FakeSleep,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub.fail_next(1, status=502)

    with caplog.at_level(logging.WARNING, logger="routing.telephony"):
        sid = await telephony.dial_out(
            to=CALLBACK_NUMBER, from_=KCC_NUMBER, url=CONNECT_URL, status_callback=CONNECT_URL
        )

    assert sid.startswith("CA")
    assert [c.status for c in stub.creates()] == [502, 201]
    assert sleep.delays == [0.2]
    assert "retry 1/4" in caplog.text
    assert "******78" in caplog.text
    assert "612345678" not in caplog.text


async def test_rejected_dial_out_is_permanent_and_its_error_does_not_carry_the_number(
    stub: TwilioStub, telephony: TwilioTelephony, sleep: FakeSleep
) -> None:
    stub.fail_next(
        1,
        status=400,
        code=21211,
        message=f"The 'To' number {CALLBACK_NUMBER} is not a valid phone number.",
    )

    with pytest.raises(TelephonyError) as caught:
        await telephony.dial_out(
            to=CALLBACK_NUMBER, from_=KCC_NUMBER, url=CONNECT_URL, status_callback=CONNECT_URL
        )

    assert caught.value.permanent is True
    assert (caught.value.status, caught.value.twilio_code) == (400, 21211)
    assert "not a valid phone number" in str(caught.value)
    assert "612345678" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert sleep.delays == []


async def test_hang_up_sends_status_completed_and_the_call_can_no_longer_be_moved(
    stub: TwilioStub, telephony: TwilioTelephony
) -> None:
    await telephony.hang_up(CALLER)

    assert [u.form for u in stub.updates_for(CALLER)] == [{"Status": "completed"}]
    assert stub.call_status(CALLER) == "completed"
    with pytest.raises(TelephonyError) as caught:
        await telephony.redirect(CALLER, CONNECT_URL)
    assert caught.value.permanent is True


# -- conferences ----------------------------------------------------------------------------

ADVISER = NewParticipant(
    to="+31201234567",
    from_=KCC_NUMBER,
    label="adviser",
    timeout=20,
    status_callback="https://kcc.example/twilio/adviser-status?offer=1",
)


async def test_a_participant_is_added_held_muted_and_removed_with_the_sdk(
    stub: TwilioStub, telephony: TwilioTelephony
) -> None:
    stub.script_device(ADVISER.to, "answers")
    conference = stub.dial_conference(
        CALLER, "kcc-CA1", label="caller", end_conference_on_exit=True
    )
    assert await telephony.find_conference("kcc-CA1") == conference.sid
    assert await telephony.find_conference("kcc-CA2") is None

    leg = await telephony.add_participant(conference.sid, ADVISER)
    await telephony.update_participant(
        conference.sid, CALLER, ParticipantChange(hold=True, hold_url="https://m.example/a.mp3")
    )
    await telephony.update_participant(conference.sid, leg, ParticipantChange(muted=True))

    caller, adviser = conference.participants[CALLER], conference.participants[leg]
    assert (caller.hold, caller.hold_url, adviser.muted) == (True, "https://m.example/a.mp3", True)
    [create] = [r for r in stub.requests if r.path.endswith("/Participants.json")]
    assert create.form["StatusCallbackEvent"] == "ringing answered completed"
    assert (create.form["Label"], create.form["Timeout"]) == ("adviser", "20")
    hold = [r for r in stub.requests if r.call_sid == CALLER and r.method == "POST"][-1]
    assert hold.form == {"Hold": "true", "HoldUrl": "https://m.example/a.mp3", "HoldMethod": "GET"}

    await telephony.remove_participant(conference.sid, leg)
    assert list(conference.participants) == [CALLER]
    await telephony.end_conference(conference.sid)
    assert conference.status == "completed" and not conference.participants
    with pytest.raises(TelephonyError) as gone:
        await telephony.remove_participant(conference.sid, CALLER)
    assert (gone.value.permanent, gone.value.status) == (True, 404)


async def test_a_coach_is_added_heard_only_by_the_participant_it_coaches(
    stub: TwilioStub, telephony: TwilioTelephony
) -> None:
    conference = stub.dial_conference(CALLER, "kcc-CA1", label="caller")
    coach = NewParticipant(
        to="client:sanne",
        from_=KCC_NUMBER,
        label="supervisor",
        timeout=20,
        status_callback="https://kcc.example/twilio/x",
        muted=True,
        call_sid_to_coach=CALLER,
    )
    leg = await telephony.add_participant(conference.sid, coach)
    participant = conference.participants[leg]
    assert (participant.coaching, participant.call_sid_to_coach, participant.muted) == (
        True,
        CALLER,
        True,
    )
    await telephony.update_participant(conference.sid, leg, ParticipantChange(coaching=False))
    assert not participant.coaching


async def test_adding_a_participant_is_retried_after_a_twilio_error(
    stub: TwilioStub, telephony: TwilioTelephony, sleep: FakeSleep
) -> None:
    conference = stub.dial_conference(CALLER, "kcc-CA1", label="caller")
    stub.fail_next(1, status=503)

    leg = await telephony.add_participant(conference.sid, ADVISER)

    assert leg in conference.participants and sleep.delays == [0.2]


async def test_recording_telephony_remembers_conference_requests() -> None:
    recording = RecordingTelephony()
    telephony: Telephony = recording

    leg = await telephony.add_participant("CF1", ADVISER)
    await telephony.update_participant("CF1", leg, ParticipantChange(hold=True))
    await telephony.remove_participant("CF1", leg)
    await telephony.end_conference("CF1")

    assert recording.added == [("CF1", ADVISER)]
    assert recording.changes == [("CF1", leg, ParticipantChange(hold=True))]
    assert recording.removed == [("CF1", leg)] and recording.ended == ["CF1"]
    assert await telephony.find_conference("kcc-CA1") is None


async def test_recording_telephony_records_what_it_was_asked_and_moves_nothing() -> None:
    recording = RecordingTelephony()
    telephony: Telephony = recording  # the demo's stand-in satisfies the same protocol

    await telephony.redirect(CALLER, CONNECT_URL)
    sid = await telephony.dial_out(
        to=CALLBACK_NUMBER, from_=KCC_NUMBER, url=CONNECT_URL, status_callback=CONNECT_URL
    )
    await telephony.hang_up(CALLER)

    assert recording.redirects == [(CALLER, CONNECT_URL)]
    assert re.fullmatch(r"CA[0-9a-f]{32}", sid)
    [dial] = recording.dial_outs
    assert (dial.to, dial.from_, dial.url, dial.call_sid) == (
        CALLBACK_NUMBER,
        KCC_NUMBER,
        CONNECT_URL,
        sid,
    )
    assert recording.hang_ups == [CALLER]


async def test_recording_telephony_refuses_to_move_a_caller_who_has_gone() -> None:
    recording = RecordingTelephony()
    recording.gone.add(CALLER)

    with pytest.raises(TelephonyError) as caught:
        await recording.redirect(CALLER, CONNECT_URL)

    assert caught.value.permanent is True
    assert caught.value.twilio_code == CALL_NOT_IN_PROGRESS
    assert recording.redirects == []


def test_stub_runs_as_a_process_and_can_be_scripted_over_http() -> None:
    account_sid, token = "AC" + "3" * 32, "process-token"
    command = [sys.executable, "-m", "tests.support.twilio_stub", "--port", "0"]
    command += ["--account-sid", account_sid, "--auth-token", token]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            ready = process.stdout.readline().split()
            assert ready[:3] == ["twilio", "stub", "ready"]
            with httpx.Client(base_url=ready[3]) as client:
                client.post("/_stub/fail_next", json={"n": 1, "status": 503}).raise_for_status()
                url = f"/2010-04-01/Accounts/{account_sid}/Calls/{CALLER}.json"
                first = client.post(url, data={"Url": CONNECT_URL}, auth=(account_sid, token))
                second = client.post(url, data={"Url": CONNECT_URL}, auth=(account_sid, token))
                seen = client.get("/_stub/requests").json()
        finally:
            process.terminate()
        assert process.wait(timeout=10) == 0  # a clean shutdown on SIGTERM
    assert (first.status_code, second.status_code) == (503, 200)
    assert second.json()["sid"] == CALLER
    assert [r["status"] for r in seen] == [503, 200]


async def test_a_label_in_use_at_the_first_attempt_is_someone_elses_and_stays_an_error(
    stub: TwilioStub, telephony: TwilioTelephony
) -> None:
    stub.script_device(ADVISER.to, "rings")
    conference = stub.dial_conference(CALLER, "kcc-CA1", label="caller")
    first = await telephony.add_participant(conference.sid, ADVISER)

    with pytest.raises(TelephonyError) as refused:
        await telephony.add_participant(conference.sid, ADVISER)  # not a retry of ours

    assert (refused.value.permanent, refused.value.twilio_code) == (True, 16026)
    assert [p.call_sid for p in conference.participants.values() if p.label == "adviser"] == [first]
    assert not [r for r in stub.requests if r.method == "GET" and "/Participants/" in r.path]


async def test_the_status_of_a_call_is_fetched_and_an_ended_one_says_so(
    stub: TwilioStub, telephony: TwilioTelephony
) -> None:
    assert await telephony.call_status("CA1") == "in-progress"
    stub.hang_up_caller("CA1")
    assert await telephony.call_status("CA1") == "completed"


# -- the asyncio HTTP client: a total timeout, one session per event loop, aclose -----------


class BareTwilio:
    """A bare HTTP/1.1 server on threads that answers every request with a live call, keeps the
    connection open, and counts connections opened and closed by the client; with `trickle`
    it sends the body one byte per `trickle` seconds (a Twilio that answers, then hangs)."""

    def __init__(self, *, trickle: float | None = None) -> None:
        self.trickle = trickle
        self.requests = 0
        self.opened = 0
        self.closed = 0
        self.changed = threading.Condition()
        bare = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                bare.count("opened")
                try:
                    while bare.answer(self.rfile, self.wfile):
                        pass
                except OSError:  # the client gave up on the answer and closed
                    pass
                bare.count("closed")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self, what: str) -> None:
        with self.changed:
            setattr(self, what, getattr(self, what) + 1)
            self.changed.notify_all()

    def wait_closed(self, n: int, timeout: float = 5.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.closed >= n, timeout)

    def answer(self, rfile: Any, wfile: Any) -> bool:
        if not rfile.readline():
            return False  # the client closed the connection
        length = 0
        while (line := rfile.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        rfile.read(length)
        self.count("requests")
        body = json.dumps({"sid": CALLER, "status": "in-progress"}).encode()
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        wfile.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode())
        if self.trickle is None:
            wfile.write(body)
            return True
        for byte in body:
            wfile.write(bytes([byte]))
            wfile.flush()
            time.sleep(self.trickle)
        return True

    def __enter__(self) -> BareTwilio:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def bare_telephony(bare: BareTwilio, sleep: FakeSleep, **options: Any) -> TwilioTelephony:
    return TwilioTelephony(
        account_sid="AC" + "0" * 32,
        auth_token="secret",
        api_base=bare.base_url,
        sleep=sleep,
        **options,
    )


async def test_an_answer_that_trickles_in_past_the_timeout_is_retried_then_transient(
    sleep: FakeSleep,
) -> None:
    # Each byte comes well within the timeout, the whole answer never does (~10 s): the timeout
    # is for the request as a whole, not per read.
    with BareTwilio(trickle=0.25) as bare:
        telephony = bare_telephony(bare, sleep, timeout=0.5, backoff=(0.1,))
        try:
            with pytest.raises(TelephonyError) as caught:
                await asyncio.wait_for(telephony.redirect(CALLER, CONNECT_URL), timeout=5)
        finally:
            await telephony.aclose()

    assert caught.value.permanent is False  # the call goes back in the queue
    assert caught.value.status is None  # no (whole) answer came
    assert bare.requests == 2  # tried again once, as the back-off says
    assert sleep.delays == [0.1]


def test_one_telephony_serves_event_loops_one_after_another(sleep: FakeSleep) -> None:
    # The CLI and the tests run several event loops in one process: each gets its own session,
    # and a loop that ends closes its connections (they would leak otherwise).
    with BareTwilio() as bare:
        telephony = bare_telephony(bare, sleep)

        async def status() -> str:
            return await telephony.call_status(CALLER)

        assert asyncio.run(status()) == "in-progress"
        assert bare.wait_closed(1)  # the first loop's connection, closed as that loop ended
        assert asyncio.run(status()) == "in-progress"
        assert bare.wait_closed(2)
        assert (bare.requests, bare.opened) == (2, 2)
    assert sleep.delays == []


async def test_aclose_closes_the_connections(sleep: FakeSleep) -> None:
    with BareTwilio() as bare:
        telephony = bare_telephony(bare, sleep)
        await telephony.redirect(CALLER, CONNECT_URL)
        await telephony.redirect(CALLER, CONNECT_URL)
        assert (bare.opened, bare.closed) == (1, 0)  # one connection, kept for the next request

        await telephony.aclose()

        assert bare.wait_closed(1)
        await telephony.redirect(CALLER, CONNECT_URL)  # a later request opens a new one
        await telephony.aclose()
        assert bare.wait_closed(2) and bare.requests == 3


def unresolvable_telephony(sleep: FakeSleep, **options: Any) -> TwilioTelephony:
    """Twilio at a host name that does not resolve (.invalid): reachable through a proxy only."""
    return TwilioTelephony(
        account_sid="AC" + "0" * 32,
        auth_token="secret",
        api_base="http://api.twilio.invalid",
        sleep=sleep,
        **options,
    )


def without_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP", "HTTPS", "ALL", "NO"):
        monkeypatch.delenv(f"{name}_PROXY", raising=False)
        monkeypatch.delenv(f"{name.lower()}_proxy", raising=False)


async def test_a_proxy_in_the_environment_carries_the_requests(
    sleep: FakeSleep, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only a proxy can carry the request (the bare server answers the proxy's absolute-form
    # request line like any other).
    without_proxies(monkeypatch)
    with BareTwilio() as bare:
        monkeypatch.setenv("HTTP_PROXY", bare.base_url)
        telephony = unresolvable_telephony(sleep)
        await telephony.redirect(CALLER, CONNECT_URL)
        await telephony.aclose()
        assert bare.requests == 1


async def test_without_a_proxy_twilio_is_asked_directly(
    sleep: FakeSleep, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_proxies(monkeypatch)
    with BareTwilio() as bare:
        telephony = bare_telephony(bare, sleep)
        await telephony.redirect(CALLER, CONNECT_URL)
        # Without a proxy aiohttp does not look one up (in a thread) nor read ~/.netrc per request.
        assert telephony._http._session().trust_env is False
        await telephony.aclose()
        assert bare.requests == 1
    telephony = unresolvable_telephony(sleep, backoff=())
    with pytest.raises(TelephonyError) as refused:
        await telephony.redirect(CALLER, CONNECT_URL)
    await telephony.aclose()
    assert not refused.value.permanent  # a name that does not resolve: a connection error


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no trust store knows (a TLS-inspecting proxy's, say)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def redirect_refused_by(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    sleep: FakeSleep,
    *,
    tls: ssl.SSLContext | None = None,
) -> TelephonyError:
    """A redirect to a Twilio that `serve` plays, with one retry: the error it ends with."""
    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    telephony = TwilioTelephony(
        account_sid="AC" + "0" * 32,
        auth_token="secret",
        api_base=f"{'https' if tls else 'http'}://127.0.0.1:{port}",
        sleep=sleep,
        backoff=(0.2,),
    )
    try:
        with pytest.raises(TelephonyError) as failed:
            await telephony.redirect(CALLER, CONNECT_URL)
    finally:
        await telephony.aclose()
        server.close()
        await server.wait_closed()
    return failed.value


async def test_a_refused_certificate_is_retried_and_stays_transient(
    sleep: FakeSleep, tmp_path: Path
) -> None:
    # Transient: the offer is tried again later and the caller keeps their place in our line
    # (a permanent error would take them out of it while they wait in Twilio's queue).
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*self_signed_certificate(tmp_path))

    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    refused = await redirect_refused_by(hang_up, sleep, tls=context)
    assert not refused.permanent and sleep.delays == [0.2]
    assert "Certificate" in str(refused)


async def test_a_5xx_page_in_another_charset_is_retried_as_a_5xx(sleep: FakeSleep) -> None:
    page = "<p>Dienst tijdelijk niet beschikbaar – réessayez</p>".encode("latin-1", "replace")

    async def unavailable(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\n"
        writer.write(f"{head}Content-Length: {len(page)}\r\nConnection: close\r\n\r\n".encode())
        writer.write(page)
        await writer.drain()
        writer.close()

    failed = await redirect_refused_by(unavailable, sleep)
    assert (failed.permanent, failed.status) == (False, 503)
    assert sleep.delays == [0.2]


async def test_a_request_never_asks_the_os_for_randomness(
    stub: TwilioStub, telephony: TwilioTelephony, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp's FormData gives every form a multipart boundary from os.urandom (uuid4), even
    one it sends urlencoded, and os.urandom lets go of the GIL on the event loop
    (tests/test_event_loop_keeps_the_gil.py): the REST client encodes its forms itself. The
    form still arrives as the SDK made it."""
    # The first request makes the session (once per event loop); the rule is for the rest.
    await telephony.redirect(CALLER, f"{CONNECT_URL}1")

    def refused(size: int) -> bytes:
        raise AssertionError(f"os.urandom({size}) on the event loop")

    monkeypatch.setattr(os, "urandom", refused)
    monkeypatch.setattr(random, "_urandom", refused)  # what `secrets` draws from
    try:
        await telephony.redirect(CALLER, f"{CONNECT_URL}2")
    finally:
        monkeypatch.undo()
    [_, update] = stub.updates_for(CALLER)
    assert update.form == {"Url": f"{CONNECT_URL}2", "Method": "POST"}
