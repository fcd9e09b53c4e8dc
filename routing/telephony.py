"""Moving live calls with Twilio's REST API: redirect a waiting caller, dial out a callback,
and run the conference every conversation takes place in (add, hold, mute, coach, remove).

Routing decides *who* gets a call; this module does the one thing that needs the phone network.
A failure here must never lose a caller: transient errors (timeouts, connection errors, HTTP 5xx
and 429) are retried with back-off, and when the attempts run out a `TelephonyError` with
`permanent=False` tells the caller to put the call back in the queue. A 4xx other than 429
(e.g. Twilio 21220, "call is not in-progress": the caller already hung up) cannot get better by
asking again, so it is raised at once with `permanent=True`.

`TwilioTelephony` drives the real twilio SDK through its asyncio requests (`*_async`, over an
aiohttp session of this module's: `TwilioHttp`); `api_base` points it at a Twilio-compatible stub
for tests and demos. `RecordingTelephony` is the simulated telephony of the embedded demo when
there is no Twilio account.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from flows.errors import ErrorKind, KccError
from routing.privacy import mask_number, mask_text

log = logging.getLogger(__name__)

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[object]]

# Twilio's "Call is not in-progress. Cannot redirect." - the caller has gone.
CALL_NOT_IN_PROGRESS = 21220
# Twilio's "Participant label is in use by another participant" (a conference's labels are unique).
LABEL_IN_USE = 16026
# A call's status that no longer changes: it has ended.
CALL_ENDED = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


class TelephonyError(KccError):
    """A Twilio request failed for good (`permanent`) or after all retries (put the call back)."""

    code = "telephony_failed"
    kind = ErrorKind.UPSTREAM

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        status: int | None = None,
        twilio_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status  # HTTP status; None when no answer came (timeout, connection)
        self.twilio_code = twilio_code  # Twilio's error code, e.g. 21220


# "initiated" is not asked for: nothing acts on it (the create's answer gives the leg). Busy,
# no-answer, failed and canceled arrive as the "completed" event with that CallStatus.
PARTICIPANT_EVENTS = ("ringing", "answered", "completed")


@dataclass(frozen=True)
class NewParticipant:
    """A call Twilio places into a conference (`conferences(sid).participants.create`).

    `to` is a device: `client:NAME` (a browser phone) or an E.164 number. The status callback
    gets the participant's call events (ringing, answered, completed) so the caller
    of this API can follow a leg that does not answer, is busy or fails.
    """

    to: str
    from_: str
    label: str  # e.g. "adviser", "supervisor", "department": the participant's role
    timeout: int  # seconds it may ring
    status_callback: str
    status_callback_events: tuple[str, ...] = PARTICIPANT_EVENTS
    start_conference_on_enter: bool = True
    end_conference_on_exit: bool = False
    muted: bool = False
    call_sid_to_coach: str | None = None  # coaching: heard only by this participant


@dataclass(frozen=True)
class ParticipantChange:
    """What to change of a participant; None leaves that setting as it is."""

    hold: bool | None = None
    hold_url: str | None = None  # music while held (Twilio plays its own without it)
    muted: bool | None = None
    coaching: bool | None = None
    call_sid_to_coach: str | None = None
    announce_url: str | None = None  # TwiML <Say>/<Play> spoken to this participant


@dataclass(frozen=True)
class QueueMember:
    """A caller waiting in one of Twilio's queues (Queue Members over REST)."""

    queue: str  # the queue's friendly name, e.g. kcc-vog_np
    call_sid: str
    date_enqueued: datetime | None  # Twilio gives whole seconds
    position: int  # 1 is next in that queue


class Telephony(Protocol):
    async def redirect(self, call_sid: str, url: str) -> None:
        """Make Twilio fetch new TwiML for a live call from `url` (POST)."""
        ...

    async def dial_out(self, *, to: str, from_: str, url: str, status_callback: str) -> str:
        """Place a call; Twilio fetches TwiML from `url` when answered. Returns the CallSid."""
        ...

    async def hang_up(self, call_sid: str) -> None: ...

    async def call_status(self, call_sid: str) -> str:
        """The call's status now, as Twilio says it (queued, ringing, in-progress, completed,
        busy, failed, no-answer, canceled)."""
        ...

    async def add_participant(self, conference_sid: str, participant: NewParticipant) -> str:
        """Call a device into a conference; returns the new participant's CallSid."""
        ...

    async def update_participant(
        self, conference_sid: str, call_sid: str, change: ParticipantChange
    ) -> None:
        """Hold, mute, coach or announce to one participant (by CallSid or label)."""
        ...

    async def remove_participant(self, conference_sid: str, call_sid: str) -> None:
        """Take a participant out: its call leaves (a caller's <Dial> action runs next)."""
        ...

    async def end_conference(self, conference_sid: str) -> None:
        """End the conference: every participant leaves."""
        ...

    async def find_conference(self, name: str) -> str | None:
        """The SID of the conference in progress with this friendly name, if there is one."""
        ...

    async def queue_members(self, prefix: str) -> list[QueueMember]:
        """Every caller in Twilio's queues whose friendly name starts with `prefix`."""
        ...

    async def aclose(self) -> None:
        """Release the connections (those of the running event loop)."""
        ...


def _transient_status(status: int) -> bool:
    # 429: rate limited; 5xx: Twilio's side. Both may well succeed on a later attempt.
    return status == 429 or status >= 500


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _wrong_setting(exc: Exception) -> bool:
    """A base URL aiohttp cannot use (InvalidURL is a ValueError, a scheme other than http(s)
    is not) or a body that is not JSON: a wrong KCC_TWILIO_API_BASE does not fix itself. A
    refused certificate is a ValueError too, but retried as with requests (a TLS-inspecting
    proxy, a clock off): permanent would take the caller out of our line while they wait in
    Twilio's queue."""
    if isinstance(exc, aiohttp.ClientSSLError):
        return False
    return isinstance(exc, ValueError | aiohttp.NonHttpUrlClientError)


def _detail(exc: Any) -> str:
    # TwilioRestException has `msg`; the RFC 9457 TwilioServiceException has `title`/`detail`.
    text = getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", "")
    return mask_text(str(text))


class TwilioHttp(AsyncTwilioHttpClient):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's asyncio HTTP client, with what the service needs of it.

    - Every request has a total timeout (connect, send, answer and body): the SDK's client
      ignores its own `timeout` (only a per-request one reaches aiohttp, and none is given), so
      a hung Twilio would hold the call it is meant to move for aiohttp's default 5 minutes.
    - The Basic auth header is built once, not per request (the SDK's encodes it every time).
    - One aiohttp session per event loop, made at the loop's first request: a session (its
      connections, its timers) belongs to the loop it was made on, and the tests and the CLI
      run several loops in one process. A session closes at `aclose()` on its loop, or when its
      loop's runner ends (`asyncio.run` cancels what is left, so the keeper task closes it).
    """

    def __init__(self, *, timeout: float) -> None:
        super().__init__(pool_connections=False, timeout=timeout)
        self._sessions: dict[
            asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, asyncio.Task[None]]
        ] = {}
        self._auth: tuple[tuple[str, str], str] | None = None  # (login, password), the header

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = self._authorization(auth)
        # The SDK's clients log 11 INFO lines per request (each header on its own), which the
        # service's JSON logging made ~1 ms of CPU: one DEBUG line (SIDs only, never a number).
        log.debug("twilio %s %s", method, url)
        body: bytes | None = None
        if data is not None:
            # Encoded here, as aiohttp would: its FormData makes a multipart writer for every
            # form, whose boundary comes from os.urandom, which lets go of the GIL on the loop
            # (docs/architecture.md, "Work on the event loop keeps the GIL").
            body = urlencode(data, doseq=True).encode()
            if not any(name.lower() == "content-type" for name in headers):  # as the SDK
                headers["Content-Type"] = "application/x-www-form-urlencoded"
        session = self._session()
        async with asyncio.timeout(timeout or self.timeout):
            async with session.request(
                method.upper(),
                url,
                params=params,
                data=body,
                headers=headers,
                allow_redirects=allow_redirects,
            ) as answer:
                # errors="replace": a proxy's 5xx page in another charset is still a 5xx
                # (retried), not a UnicodeDecodeError taken for a wrong configuration.
                text = await answer.text(errors="replace")
        return Response(answer.status, text, answer.headers)

    async def aclose(self) -> None:
        """Close the running loop's session (its pooled connections)."""
        held = self._sessions.pop(asyncio.get_running_loop(), None)
        if held is not None:
            session, keeper = held
            keeper.cancel()
            await session.close()

    async def close(self) -> None:  # the SDK's name for it
        await self.aclose()

    def _authorization(self, auth: tuple[str, str]) -> str:
        if self._auth is None or self._auth[0] != auth:
            # What aiohttp's BasicAuth encodes (deprecated in 3.14; its successor is 3.14's).
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode("latin1")).decode("ascii")
            self._auth = (auth, f"Basic {token}")
        return self._auth[1]

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        held = self._sessions.get(loop)
        if held is not None:
            return held[0]
        # A loop that has ended took its connections with it (its keeper closed them). A copy
        # and pop(): a loop in another thread may add or prune at the same time.
        for ended in [other for other in list(self._sessions) if other.is_closed()]:
            self._sessions.pop(ended, None)
        # trust_env: HTTPS_PROXY and the rest apply, as they did with the SDK's requests client.
        # Only when a proxy is configured: with trust_env aiohttp looks the proxy up in a worker
        # thread and reads ~/.netrc on every request (~3 % of an app's CPU under load).
        session = aiohttp.ClientSession(trust_env=bool(urllib.request.getproxies()))
        keeper = loop.create_task(_close_at_the_end(session), name="twilio-session-keeper")
        self._sessions[loop] = (session, keeper)
        return session


async def _close_at_the_end(session: aiohttp.ClientSession) -> None:
    """Wait until cancelled (by `aclose` or by the loop's runner ending), then close."""
    try:
        await asyncio.Event().wait()
    finally:
        await session.close()


class TwilioTelephony:
    """The real twilio SDK, asyncio requests on the event loop, with retries."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        api_base: str | None = None,
        timeout: float = 3.0,
        backoff: Sequence[float] = (0.2, 0.5, 1.0, 2.0),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._http = TwilioHttp(timeout=timeout)
        self._client: Any = Client(account_sid, auth_token, http_client=self._http)
        if api_base is not None:
            # Every REST path used here lives on the `api` domain; overriding its base URL is
            # how the SDK is pointed at a stub (region/edge rewriting only applies when set).
            self._client.api.base_url = api_base.rstrip("/")
        self._backoff = tuple(backoff)
        self._sleep = sleep

    async def redirect(self, call_sid: str, url: str) -> None:
        await self._call(
            f"redirect {call_sid}",
            lambda: self._client.calls(call_sid).update_async(url=url, method="POST"),
        )

    async def dial_out(self, *, to: str, from_: str, url: str, status_callback: str) -> str:
        # A read timeout is ambiguous: Twilio may have placed the call and a retry can then ring
        # the person twice. Accepted: a second ring beats a callback that never comes.
        call = await self._call(
            f"dial out to {mask_number(to)}",
            lambda: self._client.calls.create_async(
                to=to,
                from_=from_,
                url=url,
                method="POST",
                status_callback=status_callback,
                status_callback_method="POST",
            ),
        )
        sid = getattr(call, "sid", None)
        if not isinstance(sid, str):
            raise TelephonyError("Twilio created a call without a sid", permanent=True)
        return sid

    async def hang_up(self, call_sid: str) -> None:
        await self._call(
            f"hang up {call_sid}",
            lambda: self._client.calls(call_sid).update_async(status="completed"),
        )

    async def call_status(self, call_sid: str) -> str:
        call = await self._call(
            f"fetch {call_sid}", lambda: self._client.calls(call_sid).fetch_async()
        )
        status = getattr(call, "status", None)
        if not isinstance(status, str):
            raise TelephonyError("Twilio answered a call without a status", permanent=True)
        return status

    async def add_participant(self, conference_sid: str, participant: NewParticipant) -> str:
        # A retry after a timeout or a 5xx may find the first attempt carried out: Twilio then
        # refuses the label, which is ours (16026), and the participant it names is the leg.
        options: dict[str, Any] = {
            "from_": participant.from_,
            "to": participant.to,
            "label": participant.label,
            "timeout": participant.timeout,
            "status_callback": participant.status_callback,
            "status_callback_method": "POST",
            "status_callback_event": list(participant.status_callback_events),
            "start_conference_on_enter": participant.start_conference_on_enter,
            "end_conference_on_exit": participant.end_conference_on_exit,
            "muted": participant.muted,
        }
        if participant.call_sid_to_coach is not None:
            options["coaching"] = True
            options["call_sid_to_coach"] = participant.call_sid_to_coach
        what = f"add {participant.label} {mask_number(participant.to)} to {conference_sid}"
        attempts = 0

        async def create() -> Any:
            nonlocal attempts
            attempts += 1
            participants = self._client.conferences(conference_sid).participants
            return await participants.create_async(**options)

        try:
            created = await self._call(what, create)
        except TelephonyError as exc:
            # Refused at the first attempt, the label is someone else's: that stays an error.
            if exc.twilio_code != LABEL_IN_USE or attempts < 2:
                raise
            log.warning("twilio %s: an earlier attempt added it; taking that leg", what)
            created = await self._call(
                f"find {participant.label} in {conference_sid}",
                lambda: (
                    self._client.conferences(conference_sid)
                    .participants(participant.label)
                    .fetch_async()
                ),
            )
        sid = getattr(created, "call_sid", None)
        if not isinstance(sid, str):
            raise TelephonyError("Twilio created a participant without a call sid", permanent=True)
        return sid

    async def update_participant(
        self, conference_sid: str, call_sid: str, change: ParticipantChange
    ) -> None:
        options: dict[str, Any] = {
            name: value for name, value in asdict(change).items() if value is not None
        }
        if "hold_url" in options:
            options["hold_method"] = "GET"  # a music file, not our TwiML
        await self._call(
            f"update participant {call_sid} of {conference_sid}",
            lambda: (
                self._client.conferences(conference_sid)
                .participants(call_sid)
                .update_async(**options)
            ),
        )

    async def remove_participant(self, conference_sid: str, call_sid: str) -> None:
        await self._call(
            f"remove participant {call_sid} of {conference_sid}",
            lambda: self._client.conferences(conference_sid).participants(call_sid).delete_async(),
        )

    async def end_conference(self, conference_sid: str) -> None:
        await self._call(
            f"end conference {conference_sid}",
            lambda: self._client.conferences(conference_sid).update_async(status="completed"),
        )

    async def find_conference(self, name: str) -> str | None:
        found = await self._call(
            f"find conference {name}",
            lambda: self._client.conferences.list_async(
                friendly_name=name, status="in-progress", limit=1
            ),
        )
        sid = getattr(found[0], "sid", None) if found else None
        return sid if isinstance(sid, str) else None

    async def queue_members(self, prefix: str) -> list[QueueMember]:
        queues = await self._call("list queues", lambda: self._client.queues.list_async())
        found: list[QueueMember] = []
        for queue in queues:
            name = getattr(queue, "friendly_name", None)
            sid = getattr(queue, "sid", None)
            if not isinstance(name, str) or not isinstance(sid, str) or not name.startswith(prefix):
                continue
            members = await self._call(f"list members of {name}", partial(self._members, sid))
            found.extend(
                QueueMember(
                    queue=name,
                    call_sid=member.call_sid,
                    date_enqueued=member.date_enqueued,
                    position=member.position or 0,
                )
                for member in members
                if isinstance(getattr(member, "call_sid", None), str)
            )
        return found

    async def _members(self, queue_sid: str) -> list[Any]:
        return list(await self._client.queues(queue_sid).members.list_async())

    async def aclose(self) -> None:
        """Close the running loop's pooled connections (otherwise their sockets leak)."""
        await self._http.aclose()

    async def _call(self, what: str, request: Callable[[], Awaitable[T]]) -> T:
        attempts = len(self._backoff) + 1
        for attempt in range(1, attempts + 1):
            try:
                return await request()
            except (TwilioRestException, TwilioServiceException) as exc:
                status = _int_or_none(exc.status)
                code = _int_or_none(exc.code)
                if status is None or not _transient_status(status):
                    # Twilio's message can quote the number dialled: masked, and the SDK's
                    # exception is not chained, so a logged traceback cannot leak it either.
                    raise TelephonyError(
                        f"{what}: Twilio answered {status} (code {code}): {_detail(exc)}",
                        permanent=True,
                        status=status,
                        twilio_code=code,
                    ) from None
                error: TelephonyError = TelephonyError(
                    f"{what}: Twilio answered {status} (code {code}) {attempts} times",
                    permanent=False,
                    status=status,
                    twilio_code=code,
                )
                reason = f"HTTP {status}"
            except (ValueError, TimeoutError, aiohttp.ClientError, OSError) as exc:
                if _wrong_setting(exc):
                    raise TelephonyError(f"{what}: {mask_text(str(exc))}", permanent=True) from None
                # Our timeout and connection errors (refused, reset, closed half-way).
                error = TelephonyError(
                    f"{what}: {type(exc).__name__} {attempts} times", permanent=False
                )
                reason = type(exc).__name__
            except TwilioException as exc:
                # The SDK refusing before sending (e.g. no credentials): configuration.
                raise TelephonyError(f"{what}: {mask_text(str(exc))}", permanent=True) from None
            if attempt == attempts:
                log.warning(
                    "twilio %s failed (%s); giving up after %d attempts", what, reason, attempt
                )
                raise error
            delay = self._backoff[attempt - 1]
            log.warning(
                "twilio %s failed (%s); retry %d/%d in %.1fs",
                what,
                reason,
                attempt,
                attempts - 1,
                delay,
            )
            await self._sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises


@dataclass(frozen=True)
class DialOut:
    to: str
    from_: str
    url: str
    status_callback: str
    call_sid: str


class RecordingTelephony:
    """Simulated telephony for the embedded demo: remembers what it was asked, moves nothing.

    `gone` holds CallSids whose caller has hung up; asking to move one fails like Twilio does
    (permanent, 400, code 21220), so the demo can show a caller who leaves while being connected.
    """

    def __init__(self) -> None:
        self.redirects: list[tuple[str, str]] = []  # (call_sid, url)
        self.dial_outs: list[DialOut] = []
        self.hang_ups: list[str] = []
        self.gone: set[str] = set()
        # conference SID -> its participants' CallSids, and what each was asked
        self.conferences: dict[str, list[str]] = {}
        self.names: dict[str, str] = {}  # conference name -> SID (filled by the demo)
        self.added: list[tuple[str, NewParticipant]] = []
        self.changes: list[tuple[str, str, ParticipantChange]] = []
        self.removed: list[tuple[str, str]] = []
        self.ended: list[str] = []
        self.queued: list[QueueMember] = []  # Twilio's queues, as the demo fills them

    async def redirect(self, call_sid: str, url: str) -> None:
        self._check_live(call_sid)
        self.redirects.append((call_sid, url))

    async def dial_out(self, *, to: str, from_: str, url: str, status_callback: str) -> str:
        call_sid = "CA" + secrets.token_hex(16)
        self.dial_outs.append(DialOut(to, from_, url, status_callback, call_sid))
        return call_sid

    async def hang_up(self, call_sid: str) -> None:
        self._check_live(call_sid)
        self.hang_ups.append(call_sid)
        self.gone.add(call_sid)

    async def call_status(self, call_sid: str) -> str:
        return "completed" if call_sid in self.gone else "in-progress"

    async def add_participant(self, conference_sid: str, participant: NewParticipant) -> str:
        call_sid = "CA" + secrets.token_hex(16)
        self.added.append((conference_sid, participant))
        self.conferences.setdefault(conference_sid, []).append(call_sid)
        return call_sid

    async def update_participant(
        self, conference_sid: str, call_sid: str, change: ParticipantChange
    ) -> None:
        self._check_live(call_sid)
        self.changes.append((conference_sid, call_sid, change))

    async def remove_participant(self, conference_sid: str, call_sid: str) -> None:
        self._check_live(call_sid)
        self.removed.append((conference_sid, call_sid))
        members = self.conferences.get(conference_sid, [])
        if call_sid in members:
            members.remove(call_sid)

    async def end_conference(self, conference_sid: str) -> None:
        self.ended.append(conference_sid)
        self.conferences.pop(conference_sid, None)

    async def find_conference(self, name: str) -> str | None:
        sid = self.names.get(name)
        return sid if sid is not None and sid not in self.ended else None

    async def queue_members(self, prefix: str) -> list[QueueMember]:
        return [member for member in self.queued if member.queue.startswith(prefix)]

    async def aclose(self) -> None:
        """Nothing to release; here so both implementations can be closed alike."""

    def _check_live(self, call_sid: str) -> None:
        if call_sid in self.gone:
            raise TelephonyError(
                f"{call_sid} is not in progress",
                permanent=True,
                status=400,
                twilio_code=CALL_NOT_IN_PROGRESS,
            )
