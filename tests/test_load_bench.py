"""The load test of the whole path (bench/load.py) cannot rot: a short run of it, with its own
checks (every call answered or abandoned and recorded, none put through twice, no adviser with
two calls, every offer on its desk, nothing left waiting in Redis), at 5 calls a second for 5 s
against two app processes on the real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from twilio.request_validator import RequestValidator

from api.webhooks.signature import is_signed
from bench.load import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    AppConnection,
    ParsedAnswers,
    SignallingConferences,
    offer_of,
)
from bench.webhooks import BadAnswer, Signer
from tests.conftest import (
    POSTGRES_SERVICE,
    POSTGRES_UP,
    POSTGRES_URL,
    REDIS_SERVICE,
    REDIS_UP,
    REDIS_URL,
    need_service,
)
from tests.support.paths import ROOT
from tests.support.slow import require_slow

# A database of its own: the bench flushes it.
LOAD_REDIS_URL = f"{REDIS_URL.rsplit('/', 1)[0]}/10"


@pytest.mark.slow
def test_a_short_load_run_answers_every_call_once_with_no_errors(tmp_path: Path) -> None:
    need_service(REDIS_UP, REDIS_SERVICE)
    need_service(POSTGRES_UP, POSTGRES_SERVICE)
    require_slow("the load bench (two app processes)")
    out = tmp_path / "load.json"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.load",
            "--duration=5",
            "--rate=5",
            "--advisers=20",
            "--desks=24",
            "--idle=1",
            "--drain=15",
            f"--redis-url={LOAD_REDIS_URL}",
            f"--database-url={POSTGRES_URL}",
            f"--json-out={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())["result"]
    placed = result["placed"]
    assert placed >= 5, result  # Poisson arrivals at 5/s for 5 s: 25 expected
    outcomes = result["outcomes"]
    assert outcomes.get("answered", 0) + outcomes.get("abandoned", 0) == placed, outcomes
    checks = ("errors", "lost", "double", "unfinished")
    assert {name: result[name] for name in checks} == dict.fromkeys(checks, 0)
    assert result["call_records"] == placed
    assert result["answered_in_records"] == outcomes.get("answered", 0)
    assert result["offers_unseen_by_desk"] == 0
    assert result["left_in_redis"] == {
        "waiting": 0,
        "queue_entries": 0,
        "advisers_not_available": {},
    }
    # every webhook of a whole call was made: voice, menu, identity, queue, offer, conference,
    # the adviser's leg, the end of the conversation, the survey and the status callback
    assert {
        "voice",
        "step (menu)",
        "step (application number)",
        "step (date of birth)",
        "wait",
        "connect",
        "queue-result",
        "conference-events",
        "adviser-status",
        "dial-result",
        "survey",
        "status",
    } <= set(result["routes"])


# -- the generator's own parts, cheaper per call: still what Twilio and the apps would see -----


def _conference(conferences: SignallingConferences, call_sid: str, offer: str) -> None:
    conferences.dial_conference(
        call_sid,
        f"kcc-offer-{offer}",
        action=f"http://127.0.0.1:8000/twilio/dial-result?offer={offer}&lang=nl",
        status_callback=f"http://127.0.0.1:8000/twilio/conference-events?offer={offer}",
        status_callback_event="start end join leave",
        label="caller",
        end_conference_on_exit=True,
    )


def _signed_for_the_app(url: str, form: dict[str, str], signature: str) -> bool:
    scope = {"headers": [(b"x-twilio-signature", signature.encode())]}
    return is_signed(RequestValidator(AUTH_TOKEN), url, form, scope)


def test_the_stubs_callbacks_are_signed_as_the_apps_signature_check_wants() -> None:
    conferences = SignallingConferences(ACCOUNT_SID, AUTH_TOKEN)
    _conference(conferences, "CA" + "1" * 32, "7")
    _conference(conferences, "CA" + "2" * 32, "8")
    conferences.hang_up("CA" + "1" * 32)
    seven = conferences.take_outbox("7")
    events = [c.event for c in seven]
    assert events == [
        "conference-start",
        "participant-join",
        "participant-leave",
        "completed",  # the caller's <Dial> action: the caller hung up
        "conference-end",
    ]
    for callback in seven:
        assert _signed_for_the_app(callback.url, callback.form, callback.signature)
        assert callback.signature == RequestValidator(AUTH_TOKEN).compute_signature(
            callback.url, callback.form
        )
    tampered = {**seven[1].form, "CallSid": "CA" + "3" * 32}
    assert not _signed_for_the_app(seven[1].url, tampered, seven[1].signature)
    assert conferences.take_outbox("7") == []  # taken once
    assert [c.event for c in conferences.take_outbox("8")] == [
        "conference-start",
        "participant-join",
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://h/twilio/connect?offer=12&lang=nl",
        "http://h/twilio/conference-events?lang=nl&offer=a%2Bb+c",
        "http://h/twilio/status",
        "http://h/twilio/x?offers=1",
    ],
)
def test_the_offer_of_a_url_is_what_parse_qs_finds(url: str) -> None:
    assert offer_of(url) == parse_qs(urlsplit(url).query).get("offer", [""])[0]


def test_a_repeated_answer_is_parsed_once_and_a_bad_one_still_fails() -> None:
    answers = ParsedAnswers(size=2)
    empty = b'<?xml version="1.0" encoding="UTF-8"?><Response />'
    first = answers.parse(empty)
    assert answers.parse(b"<Response><Hangup /></Response>").find("Hangup") is not None
    assert answers.parse(empty) is first
    with pytest.raises(BadAnswer):
        answers.parse(b"<html>oops</html>")
    with pytest.raises(BadAnswer):
        answers.parse(b"<Response>")


async def test_the_generators_connection_reads_answers_split_and_kept_alive() -> None:
    """Two requests on one connection, the second answer arriving in pieces; then the server
    closes the connection with an answer half sent, as a stream reader would report it."""
    served: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        served.append(await reader.readexactly(int(head.split(b"Content-Length: ")[1][:-4])))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n<Response/>")
        head = await reader.readuntil(b"\r\n\r\n")
        served.append(await reader.readexactly(int(head.split(b"Content-Length: ")[1][:-4])))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"\r\n\r\nab")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"cde")
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhalf")
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = AppConnection(port, Signer(AUTH_TOKEN))
    try:
        url = f"http://127.0.0.1:{port}/twilio/status"
        assert await conn.post(conn.request(url, {"CallSid": "CA1"})) == b"<Response/>"
        assert await conn.post(conn.request(url, {"CallSid": "CA2"})) == b"abcde"
        assert served == [b"CallSid=CA1", b"CallSid=CA2"]
        assert conn.usable
        with pytest.raises(asyncio.IncompleteReadError):
            await conn.post(conn.request(url, {"CallSid": "CA3"}))
        assert not conn.usable
    finally:
        conn.close()
        server.close()
        await server.wait_closed()
