"""`kcc call`: a phone in the terminal, against a running server or the app in-process."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import httpx

from api.cli.phone import Phone, PhoneTurn

if TYPE_CHECKING:
    from routing.telephony import RecordingTelephony

SILENCE = "-"
HANG_UP = "q"
HOLD_REFRESH_SECONDS = 10
LISTEN_SECONDS = 5  # how long the phone waits for the demo's event stream before it dials
KEYPAD = frozenset("0123456789*#")  # what a phone has; Twilio passes nothing else as Digits
KEYPAD_TEXT = "0-9, * and #"


def not_on_keypad(keys: str) -> str | None:
    """The first character of `keys` that is not a key on a phone; None when all are."""
    return next((key for key in keys if key not in KEYPAD), None)


def _refusal(bad: str, typed: str) -> str:
    what = "a space" if bad.isspace() else repr(bad)
    where = f" (in {typed!r})" if typed != bad else ""
    return f"{what}{where} is not a key on a phone: it has {KEYPAD_TEXT}"


def scripted_problem(scripted: str) -> str | None:
    """Why --keys cannot be pressed (a key that is not on a phone), or None."""
    for token in scripted.split():
        bad = None if token in (SILENCE, HANG_UP) else not_on_keypad(token)
        if bad is not None:
            return f"--keys: {_refusal(bad, token)}"
    return None


@dataclass
class PlayedAdviser:
    """In-process, the terminal phone plays the adviser's side too: the demo adviser takes the
    call, and what Twilio would post of the conversation's conference (the caller joins, the
    adviser's phone answers, the adviser hangs up) is posted, signed, as Twilio would."""

    client: httpx.AsyncClient
    telephony: RecordingTelephony
    username: str
    password: str

    async def take(self, phone: Phone) -> tuple[str, str] | None:
        """The adviser becomes available and answers: (offer, the caller's Dial action), or
        None when routing did not put the call through (closed, no skill)."""
        token = await self.client.post(
            "/api/token", data={"username": self.username, "password": self.password}
        )
        if token.status_code != 200:
            return None
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        status = {"status": "available"}
        await self.client.post("/api/advisers/me/status", json=status, headers=headers)
        moved = [url for sid, url in self.telephony.redirects if sid == phone.call_sid]
        if not moved:
            return None
        response = await phone.post(moved[-1])  # Twilio follows routing's redirect
        response.raise_for_status()
        dial = ET.fromstring(response.text).find("Dial")
        conference = dial.find("Conference") if dial is not None else None
        if dial is None or conference is None:
            return None
        events = conference.get("statusCallback", "")
        offer = parse_qs(urlsplit(events).query).get("offer", [""])[0]
        join = {
            "StatusCallbackEvent": "participant-join",
            "ConferenceSid": "CF" + phone.call_sid[2:],
            "FriendlyName": conference.text or "",
            "ParticipantLabel": "caller",
        }
        await phone.post(events, join)  # the caller joins: routing calls the adviser in
        await phone.post(self._adviser_status(phone, offer), {"CallStatus": "in-progress"})
        return offer, dial.get("action", "")

    async def hang_up(self, phone: Phone, offer: str, action: str) -> PhoneTurn:
        """The adviser ends the conversation: what the caller, still on the line, hears."""
        await phone.post(self._adviser_status(phone, offer), {"CallStatus": "completed"})
        return await phone.follow(action, {"DialCallStatus": "completed"})

    @staticmethod
    def _adviser_status(phone: Phone, offer: str) -> str:
        return f"{phone.public_url}/twilio/adviser-status?offer={offer}"


@asynccontextmanager
async def _client(
    url: str | None, at: datetime | None, flow: Path | None
) -> AsyncIterator[tuple[httpx.AsyncClient, str, str, PlayedAdviser | None]]:
    """(client, public URL, auth token, the adviser the phone plays): a real server, or the app
    in-process on embedded stores."""
    from api.settings import Settings

    settings = Settings()
    if url is not None:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            yield client, url, settings.twilio_auth_token, None
        return
    from api.cli.demo import DEMO_ADVISER, seed_demo
    from api.web.app import create_app
    from routing.telephony import RecordingTelephony

    with tempfile.TemporaryDirectory(prefix="kcc-call-") as tmp:
        if flow is None:  # the live version of the configured database, not the file
            from api.services import current_flow

            flow = Path(tmp) / "live.yaml"
            flow.write_text(current_flow(settings).version.text, encoding="utf-8")
        local = settings.model_copy(
            update={
                "redis_url": None,
                "database_url": f"sqlite:///{tmp}/call.sqlite3",
                "now": at or settings.now,
                "flow": flow,
            }
        )
        seed_demo(local)  # the demo applications, so the identity check can be tried
        app = create_app(local)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=local.public_base) as client:
            telephony = app.state.services.telephony
            played = None
            if isinstance(telephony, RecordingTelephony):
                played = PlayedAdviser(client, telephony, *DEMO_ADVISER)
            try:
                yield client, local.public_base, local.twilio_auth_token, played
            finally:
                await app.state.services.close()


def _show(turn: PhoneTurn) -> None:
    for heard in turn.heard:
        print(f"  [{heard.language or '?'}] {heard.text}")


def _keys(scripted: str | None) -> Iterator[str | None]:
    """Keys to press: from --keys, else from the terminal. None: hang up."""
    if scripted is not None:
        for token in scripted.split():
            if token == HANG_UP:
                return
            yield token
        return
    while True:
        try:
            line = input("keys (Enter: silence, q: hang up)> ").strip()
        except EOFError:
            return
        if line.lower() == HANG_UP:
            return
        bad = None if line == SILENCE else not_on_keypad(line)
        if bad is not None:
            print(f"{_refusal(bad, line)}; try again")
            continue
        yield line or SILENCE


async def run_call(
    *,
    caller: str,
    at: datetime | None,
    url: str | None,
    flow: Path | None,
    scripted: str | None,
    hold_seconds: int = 0,
) -> int:
    from api.database.schema import SchemaError
    from flows.errors import FlowInvalid

    try:
        async with _client(url, at, flow) as (client, public_url, token, played):
            phone = Phone(client, public_url=public_url, auth_token=token, caller=caller)
            # Against a server, the phone follows the desk (the demo's call events); in-process
            # the transport cannot stream, and no desk can reach the app: the phone plays the
            # adviser itself.
            follow = url is not None and hold_seconds > 0
            return await _walk(phone, _keys(scripted), hold_seconds, follow=follow, played=played)
    except SchemaError as exc:  # the configured database, read for its live flow
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except FlowInvalid as exc:
        print("error: the flow is invalid:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 403:
            print(
                "error: the server refused the signature (403): --url must be the server's "
                "KCC_PUBLIC_URL and TWILIO_AUTH_TOKEN must be the server's token",
                file=sys.stderr,
            )
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"error: cannot reach the server: {exc}", file=sys.stderr)
        return 1


# What the terminal says when the adviser's side does something (routing's CallEvent names).
FOLLOWED = {
    "offered": "-- an adviser's phone rings for you",
    "answered": "-- an adviser answers: you are talking",
    "returned": "-- back in the queue, at the head of the line",
    "held": "-- you are on hold",
    "unheld": "-- the adviser is back",
    "transferred": "-- you are being transferred",
}


async def _follow(phone: Phone, events: asyncio.Queue[tuple[str, dict[str, str]]]) -> None:
    """Hand the call's events to `events`; a stream that breaks or is missing ends quietly
    (the phone then waits in line as without a desk)."""
    with contextlib.suppress(httpx.HTTPError):
        async for event in phone.events():
            await events.put(event)


async def _listening(
    phone: Phone, follow: bool
) -> tuple[asyncio.Task[None] | None, asyncio.Queue[tuple[str, dict[str, str]]]]:
    """Start following the call's events before dialling, so none is missed."""
    events: asyncio.Queue[tuple[str, dict[str, str]]] = asyncio.Queue()
    if not follow:
        return None, events
    task = asyncio.create_task(_follow(phone, events))
    with contextlib.suppress(TimeoutError):
        first, _ = await asyncio.wait_for(events.get(), LISTEN_SECONDS)
        if first != "listening":
            events.put_nowait((first, {}))
    return task, events


async def _walk(
    phone: Phone,
    keys: Iterator[str | None],
    hold_seconds: int = 0,
    *,
    follow: bool = False,
    played: PlayedAdviser | None = None,
) -> int:
    print(f"calling from {phone.caller} (call {phone.call_sid})")
    following, events = await _listening(phone, follow)
    try:
        return await _dialled(phone, keys, hold_seconds, events, played)
    finally:
        if following is not None:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following


async def _dialled(
    phone: Phone,
    keys: Iterator[str | None],
    hold_seconds: int,
    events: asyncio.Queue[tuple[str, dict[str, str]]],
    played: PlayedAdviser | None = None,
) -> int:
    turn = await phone.dial()
    while True:
        _show(turn)
        if turn.hung_up:
            print("-- the line goes dead (hung up by the flow)")
            await phone.hang_up()
            return 0
        if turn.queue is not None:
            print(f"-- waiting in queue {turn.queue}")
            _show(await phone.hold())
            taken = await played.take(phone) if played is not None else None
            if played is None or taken is None:
                return await _hold(phone, hold_seconds, events)
            print("-- an adviser answers: you are talking")
            print("-- you play the adviser now: Enter (or - in --keys) ends the conversation")
            if next(keys, None) is None:
                await phone.hang_up()
                print("-- you hang up")
                return 0
            print("-- the adviser hangs up")
            turn = await played.hang_up(phone, *taken)
            continue
        if not turn.waiting_for_keys:
            print("-- the answer asked for nothing more")
            await phone.hang_up()
            return 0
        pressed = next(keys, None)
        if pressed is None:
            await phone.hang_up()
            print("-- you hang up")
            return 0
        print(f"> {pressed}")
        turn = await (phone.stay_silent() if pressed == SILENCE else phone.press(pressed))


async def _hold(
    phone: Phone, hold_seconds: int, events: asyncio.Queue[tuple[str, dict[str, str]]]
) -> int:
    """Wait in line (the demo: an adviser can take the call at the desk), following what the
    adviser does; after `hold_seconds` the caller hangs up, which ends the desk's call too."""
    start = time.monotonic()
    deadline = start + hold_seconds
    next_refresh = start + HOLD_REFRESH_SECONDS
    talking = False
    while (now := time.monotonic()) < deadline:
        try:
            event, data = await asyncio.wait_for(events.get(), min(deadline, next_refresh) - now)
        except TimeoutError:
            if time.monotonic() >= next_refresh:
                next_refresh += HOLD_REFRESH_SECONDS
                if not talking:
                    print(f"-- still waiting ({round(time.monotonic() - start)} s)")
                    _show(await phone.hold())
            continue
        if event == "ended":
            if data.get("by") == "caller":
                continue  # our own hang-up, told back
            print("-- the adviser hangs up; the line goes dead")
            await phone.hang_up()
            return 0
        talking = event in ("answered", "unheld", "held") or (talking and event != "returned")
        print(FOLLOWED.get(event, f"-- {event}"))
    await phone.hang_up()
    print("-- you hang up")
    return 0
