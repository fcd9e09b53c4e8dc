"""A Twilio-compatible REST stub: the Calls, Conferences and Participants endpoints the app
uses, with scriptable failures and devices.

The app talks to it through the real twilio SDK (`KCC_TWILIO_API_BASE` = `stub.base_url`), so the
tests exercise the SDK's own request building, auth and error parsing rather than a mock.

    with TwilioStub() as stub:
        telephony = TwilioTelephony(account_sid=stub.account_sid, auth_token=stub.auth_token,
                                    api_base=stub.base_url)
        stub.fail_next(2, status=500)             # the next two requests answer 500
        stub.fail_next(1, delay=5.0)              # the next one answers only after 5 s
        stub.fail_next(1, status=500, after_effect=True)  # carried out, yet answered 500
        stub.hang_up_caller("CA...")              # that call is gone: updates answer 400/21220
        ...
        stub.updates_for("CA...")                 # what the SDK sent for that call

Endpoints (Twilio's paths, form-encoded bodies, HTTP basic auth with account SID and token):
    POST /2010-04-01/Accounts/{AccountSid}/Calls.json             create a call (201)
    POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json   update: Url/Method, Status
    GET  /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json   fetch
    GET  .../Conferences.json (FriendlyName, Status)               list conferences
    GET, POST .../Conferences/{ConferenceSid}.json                 fetch; Status=completed ends it
    GET, POST .../Conferences/{ConferenceSid}/Participants.json    list; add a participant
    GET, POST, DELETE .../Participants/{CallSid or label}.json     fetch; hold/mute/coach; remove
    GET  .../Queues.json                                           list queues
    GET  .../Queues/{QueueSid}/Members.json                        list a queue's callers
Queues: a call joins one with `stub.enqueue` (what Twilio does with `<Enqueue>`); it leaves when
it hangs up or is redirected, or with `stub.dequeue`.
Conferences (tests/support/twilio_conferences.py): a call joins one with `stub.dial_conference`
(what Twilio does with `<Dial><Conference>`), devices are scripted with `stub.script_device`,
and every callback Twilio would make waits, signed, in `stub.take_callbacks()`.
A CallSid the stub has not seen is taken to be a live inbound call (the tests' calls come from
the software phone, which never tells the stub about them).

Run as a process for multi-process tests and benchmarks; it prints the base URL when ready:
    python -m tests.support.twilio_stub --port 0 --account-sid AC... --auth-token ...
Control endpoints for another process (no auth; loopback only): GET /_stub/requests,
POST /_stub/fail_next (JSON: n, status, delay, call_sid, code,
message, after_effect), POST /_stub/hang_up/{CallSid}, POST /_stub/reset; for conferences
POST /_stub/dial_conference (JSON: call_sid, name, action, status_callback,
status_callback_event, label, end_conference_on_exit), POST /_stub/answer/{CallSid},
POST /_stub/no_answer/{CallSid}, POST /_stub/callbacks (JSON: offer) -> the signed callbacks
waiting for that offer's URLs, taken; POST /_stub/enqueue (JSON: call_sid, queue).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import secrets
import signal
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from tests.support.twilio_conferences import (
    Callback,
    Conference,
    Conferences,
    DeviceScript,
)

API = "/2010-04-01"
CALL_NOT_IN_PROGRESS = 21220


@dataclass(frozen=True)
class StubRequest:
    """One request as the stub saw it, and what it answered."""

    method: str
    path: str
    form: dict[str, str]
    auth: tuple[str, str] | None  # (username, password) of HTTP basic auth
    at: float  # time.monotonic() on arrival
    call_sid: str | None  # the call a Calls/{CallSid}.json request was about
    status: int = 0  # the HTTP status answered (0 until answered)


@dataclass
class _Failure:
    status: int | None  # None: answer normally, only late
    delay: float
    code: int | None
    call_sid: str | None
    message: str | None = None
    after_effect: bool = False  # the request is carried out first, then answered late or failed


@dataclass
class _Call:
    sid: str
    to: str
    from_: str
    status: str
    direction: str
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class _Queue:
    sid: str
    name: str
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    members: list[tuple[str, datetime]] = field(default_factory=list)  # (CallSid, enqueued)


_MESSAGES = {
    400: "Bad request",
    401: "Authenticate",
    404: "The requested resource was not found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_CODES = {401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}


def _error(status: int, code: int | None = None, message: str | None = None) -> JSONResponse:
    """Twilio's error body: the SDK reads `code` and `message` from it."""
    code = code if code is not None else _CODES.get(status, status)
    body = {
        "code": code,
        "message": message or _MESSAGES.get(status, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _rfc2822(at: datetime) -> str:
    return format_datetime(at.astimezone(UTC), usegmt=False)


def _basic_auth(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class TwilioStub:
    """The stub app plus a uvicorn server for it on a free loopback port, in a thread."""

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        self.host = host
        self.port = port
        self._lock = threading.Lock()  # handlers run in the server thread, tests read in theirs
        self._requests: list[StubRequest] = []
        self._calls: dict[str, _Call] = {}
        self._failures: deque[_Failure] = deque()
        self._queues: dict[str, _Queue] = {}  # by friendly name
        self.conferences = Conferences(self.account_sid, self.auth_token)
        self._generation = 0  # bumped by reset(): requests still in flight then are forgotten
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.app = self._build_app()

    # -- scripting and inspection ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What to give the SDK as its API base (`KCC_TWILIO_API_BASE`)."""
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[StubRequest]:
        with self._lock:
            return list(self._requests)

    def updates_for(self, call_sid: str) -> list[StubRequest]:
        """Every POST to Calls/{call_sid}.json, failed attempts included, in arrival order."""
        return [r for r in self.requests if r.call_sid == call_sid and r.method == "POST"]

    def creates(self) -> list[StubRequest]:
        """Every POST to Calls.json (dial-outs), failed attempts included."""
        return [r for r in self.requests if r.path.endswith("/Calls.json") and r.method == "POST"]

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int | None = None,
        delay: float = 0.0,
        code: int | None = None,
        call_sid: str | None = None,
        message: str | None = None,
        after_effect: bool = False,
    ) -> None:
        """Make the next `n` requests (for `call_sid` only, if given) fail.

        `status` is the error answered (default 500); with a `delay` and no `status` the request
        is answered normally but only after `delay` seconds (a client timeout, then success on a
        retry). `code` and `message` override the Twilio error code and message in the body.
        `after_effect`: the request is carried out (a participant created, a call moved) before
        the delay and the error: what real Twilio does when its answer is lost or late.
        """
        if status is None and delay <= 0:
            status = 500
        with self._lock:
            for _ in range(n):
                self._failures.append(
                    _Failure(status, delay, code, call_sid, message, after_effect)
                )

    def hang_up_caller(self, call_sid: str) -> None:
        """The caller has gone: updates to that call answer Twilio's 400, code 21220. A call in
        a conference leaves it (its callbacks wait in `take_callbacks`)."""
        with self._lock:
            call = self._calls.get(call_sid) or self._inbound(call_sid)
            call.status = "completed"
            call.updated = datetime.now(UTC)
            self.conferences.hang_up(call_sid)
            self._leave_queue(call_sid)

    def enqueue(self, call_sid: str, queue: str, *, at: datetime | None = None) -> None:
        """The call runs `<Enqueue>queue</Enqueue>`: it waits at the back of that queue (made
        on first use, as Twilio does). `at`: its date_enqueued (default now)."""
        with self._lock:
            self._calls.get(call_sid) or self._inbound(call_sid)
            self._leave_queue(call_sid)
            found = self._queues.get(queue)
            if found is None:
                found = self._queues[queue] = _Queue("QU" + secrets.token_hex(16), queue)
            found.members.append((call_sid, at or datetime.now(UTC)))

    def dequeue(self, call_sid: str) -> None:
        """The call leaves its queue (`<Leave>`, or bridged)."""
        with self._lock:
            self._leave_queue(call_sid)

    def queued(self, queue: str) -> list[str]:
        """The CallSids waiting in that queue, first first."""
        with self._lock:
            found = self._queues.get(queue)
            return [sid for sid, _ in found.members] if found else []

    def script_device(self, device: str, script: DeviceScript) -> None:
        """How a device called into a conference behaves: answers, no-answer, busy, failed, or
        rings (until `answer`)."""
        with self._lock:
            self.conferences.devices[device] = script

    def answer(self, call_sid: str) -> None:
        """A ringing participant answers now."""
        with self._lock:
            self.conferences.answer(call_sid)

    def dial_conference(
        self,
        call_sid: str,
        name: str,
        *,
        action: str | None = None,
        status_callback: str | None = None,
        status_callback_event: str = "",
        label: str | None = None,
        end_conference_on_exit: bool = False,
    ) -> Conference:
        """The call runs `<Dial action><Conference ...>name</Conference></Dial>`."""
        with self._lock:
            self._calls.get(call_sid) or self._inbound(call_sid)
            return self.conferences.dial_conference(
                call_sid,
                name,
                action=action,
                status_callback=status_callback,
                status_callback_event=status_callback_event,
                label=label,
                end_conference_on_exit=end_conference_on_exit,
            )

    def conference(self, name: str) -> Conference | None:
        """The conference with this friendly name (the latest one), whatever its status."""
        with self._lock:
            found = [c for c in self.conferences.by_sid.values() if c.name == name]
            return found[-1] if found else None

    def take_callbacks(self, offer: str | None = None) -> list[Callback]:
        """The requests Twilio would have made to the app since the last call, in order (only
        those for one offer's URLs, with `offer`)."""
        with self._lock:
            return self.conferences.take_outbox(offer)

    def sign(self, url: str, form: dict[str, str]) -> str:
        """X-Twilio-Signature of a request Twilio would make (for hand-made callbacks)."""
        return RequestValidator(self.auth_token).compute_signature(url, form)

    def no_answer(self, call_sid: str) -> None:
        """A ringing participant is not answered."""
        with self._lock:
            self.conferences.no_answer(call_sid)

    def call_status(self, call_sid: str) -> str | None:
        with self._lock:
            call = self._calls.get(call_sid)
            return call.status if call else None

    def reset(self) -> None:
        """Forget requests, calls and scripted failures (a shared stub between tests)."""
        with self._lock:
            self._generation += 1
            self._requests.clear()
            self._calls.clear()
            self._failures.clear()
            self._queues.clear()
            self.conferences.reset()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> TwilioStub:
        if self._thread is not None:
            raise RuntimeError("the stub is already running")
        self._stopping.clear()
        # Bind here, not in uvicorn, so port 0 gives a known free port before the thread runs.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # Nagle off
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        self._server = uvicorn.Server(self._config())
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="twilio-stub", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Twilio stub did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._stopping.set()  # cuts scripted delays short, so shutdown does not wait them out
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                raise RuntimeError("the Twilio stub did not stop")
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> TwilioStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app,
            loop="asyncio",
            http="h11",
            ws="none",  # no websockets import (and none of its deprecation warnings)
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )

    # -- the app --------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        calls = f"{API}/Accounts/{{account_sid}}/Calls"
        conferences = f"{API}/Accounts/{{account_sid}}/Conferences"
        conference = f"{conferences}/{{conference_sid}}"
        participant = f"{conference}/Participants/{{participant}}.json"
        queues = f"{API}/Accounts/{{account_sid}}/Queues"
        return Starlette(
            routes=[
                Route(f"{queues}.json", self._queue_list, methods=["GET"]),
                Route(f"{queues}/{{queue_sid}}/Members.json", self._members, methods=["GET"]),
                Route(f"{conferences}.json", self._conference_list, methods=["GET"]),
                Route(f"{conference}.json", self._conference_one, methods=["GET", "POST"]),
                Route(
                    f"{conference}/Participants.json",
                    self._participants,
                    methods=["GET", "POST"],
                ),
                Route(participant, self._participant_one, methods=["GET", "POST", "DELETE"]),
                Route(f"{calls}.json", self._create, methods=["POST"]),
                Route(f"{calls}/{{call_sid}}.json", self._update, methods=["POST"]),
                Route(f"{calls}/{{call_sid}}.json", self._fetch, methods=["GET"]),
                Route("/_stub/requests", self._control_requests, methods=["GET"]),
                Route("/_stub/fail_next", self._control_fail_next, methods=["POST"]),
                Route("/_stub/hang_up/{call_sid}", self._control_hang_up, methods=["POST"]),
                Route("/_stub/reset", self._control_reset, methods=["POST"]),
                Route("/_stub/enqueue", self._control_enqueue, methods=["POST"]),
                Route("/_stub/dial_conference", self._control_dial, methods=["POST"]),
                Route("/_stub/answer/{call_sid}", self._control_answer, methods=["POST"]),
                Route("/_stub/no_answer/{call_sid}", self._control_no_answer, methods=["POST"]),
                Route("/_stub/callbacks", self._control_callbacks, methods=["POST"]),
            ]
        )

    async def _create(self, request: Request) -> Response:
        return await self._handle(request, None, self._do_create)

    async def _update(self, request: Request) -> Response:
        return await self._handle(request, request.path_params["call_sid"], self._do_update)

    async def _fetch(self, request: Request) -> Response:
        return await self._handle(request, request.path_params["call_sid"], self._do_fetch)

    async def _handle(self, request: Request, call_sid: str | None, action: Any) -> Response:
        raw = await request.form()
        form = {k: v for k, v in raw.items() if isinstance(v, str)}
        for name in raw:  # a list parameter (StatusCallbackEvent) arrives repeated
            values = [v for v in raw.getlist(name) if isinstance(v, str)]
            if len(values) > 1:
                form[name] = " ".join(values)
        if request.method == "GET":
            form |= dict(request.query_params)
        auth = _basic_auth(request)
        with self._lock:
            generation, index = self._generation, len(self._requests)
            self._requests.append(
                StubRequest(
                    request.method, request.url.path, form, auth, time.monotonic(), call_sid
                )
            )
            failure = self._take_failure(call_sid)
        response = await self._answer(request, call_sid, form, auth, failure, action, generation)
        with self._lock:
            if generation == self._generation:
                self._requests[index] = replace(self._requests[index], status=response.status_code)
        return response

    async def _answer(
        self,
        request: Request,
        call_sid: str | None,
        form: dict[str, str],
        auth: tuple[str, str] | None,
        failure: _Failure | None,
        action: Any,
        generation: int,
    ) -> Response:
        done: Response | None = None
        if failure is not None and failure.after_effect and self._authorised(request, auth):
            with self._lock:
                done = action(call_sid, form)  # carried out; the client hears of it late or never
        if failure is not None and failure.delay > 0:
            await self._wait(failure.delay, generation)
        if auth != (self.account_sid, self.auth_token):
            return _error(401, message="Authenticate")
        if request.path_params["account_sid"] != self.account_sid:
            return _error(404)
        if failure is not None and failure.status is not None:
            return _error(failure.status, failure.code, failure.message)
        if done is not None:
            return done
        with self._lock:
            response: Response = action(call_sid, form)
        return response

    def _authorised(self, request: Request, auth: tuple[str, str] | None) -> bool:
        return (
            auth == (self.account_sid, self.auth_token)
            and request.path_params["account_sid"] == self.account_sid
        )

    def _take_failure(self, call_sid: str | None) -> _Failure | None:
        # The first scripted failure that applies to this request: for this call, or for any.
        for failure in self._failures:
            if failure.call_sid is None or failure.call_sid == call_sid:
                self._failures.remove(failure)
                return failure
        return None

    async def _wait(self, seconds: float, generation: int) -> None:
        # Polled, not one long sleep: stop() and reset() cut a scripted delay short.
        deadline = time.monotonic() + seconds
        while (
            not self._stopping.is_set()
            and generation == self._generation
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))

    # -- queues -----------------------------------------------------------------------------

    def _leave_queue(self, call_sid: str) -> None:
        for queue in self._queues.values():
            queue.members = [m for m in queue.members if m[0] != call_sid]

    def _queue_resource(self, queue: _Queue) -> dict[str, Any]:
        uri = f"{API}/Accounts/{self.account_sid}/Queues/{queue.sid}"
        now = datetime.now(UTC)
        waits = [(now - at).total_seconds() for _, at in queue.members]
        return {
            "account_sid": self.account_sid,
            "average_wait_time": round(sum(waits) / len(waits)) if waits else 0,
            "current_size": len(queue.members),
            "date_created": _rfc2822(queue.created),
            "date_updated": _rfc2822(queue.created),
            "friendly_name": queue.name,
            "max_size": 1000,
            "sid": queue.sid,
            "uri": f"{uri}.json",
            "subresource_uris": {"members": f"{uri}/Members.json"},
        }

    async def _queue_list(self, request: Request) -> Response:
        def answer(_: str | None, __: dict[str, str]) -> Response:
            page = [self._queue_resource(q) for q in self._queues.values()]
            uri = f"{API}/Accounts/{self.account_sid}/Queues.json"
            return JSONResponse(_page("queues", page, uri))

        return await self._handle(request, None, answer)

    async def _members(self, request: Request) -> Response:
        sid = request.path_params["queue_sid"]

        def answer(_: str | None, __: dict[str, str]) -> Response:
            queue = next((q for q in self._queues.values() if q.sid == sid), None)
            if queue is None:
                return _error(404)
            uri = f"{API}/Accounts/{self.account_sid}/Queues/{sid}/Members"
            now = datetime.now(UTC)
            page = [
                {
                    "call_sid": call_sid,
                    "date_enqueued": _rfc2822(at),
                    "position": position,
                    "queue_sid": sid,
                    "uri": f"{uri}/{call_sid}.json",
                    "wait_time": max(0, round((now - at).total_seconds())),
                }
                for position, (call_sid, at) in enumerate(queue.members, start=1)
            ]
            return JSONResponse(_page("queue_members", page, f"{uri}.json"))

        return await self._handle(request, None, answer)

    # -- conferences ------------------------------------------------------------------------

    async def _conference_list(self, request: Request) -> Response:
        def answer(_: str | None, query: dict[str, str]) -> Response:
            found = [
                c
                for c in self.conferences.by_sid.values()
                if c.name == query.get("FriendlyName", c.name)
                and c.status == query.get("Status", c.status)
            ]
            page = [self.conferences.conference_resource(API, c) for c in reversed(found)]
            uri = f"{API}/Accounts/{self.account_sid}/Conferences.json"
            return JSONResponse(_page("conferences", page, uri))

        return await self._handle(request, None, answer)

    async def _conference_one(self, request: Request) -> Response:
        sid = request.path_params["conference_sid"]

        def answer(_: str | None, form: dict[str, str]) -> Response:
            conference = self.conferences.by_sid.get(sid)
            if conference is None:
                return _error(404)
            if request.method == "POST" and form.get("Status") == "completed":
                self.conferences.end(conference)
            return JSONResponse(self.conferences.conference_resource(API, conference))

        return await self._handle(request, None, answer)

    async def _participants(self, request: Request) -> Response:
        sid = request.path_params["conference_sid"]

        def answer(_: str | None, form: dict[str, str]) -> Response:
            conference = self.conferences.by_sid.get(sid)
            if conference is None:
                return _error(404)
            if request.method == "GET":
                items = [
                    self.conferences.participant_resource(API, conference, p)
                    for p in conference.participants.values()
                ]
                uri = f"{API}/Accounts/{self.account_sid}/Conferences/{sid}/Participants.json"
                return JSONResponse(_page("participants", items, uri))
            if conference.status == "completed":
                return _error(400, 20404, "Conference is not in progress")
            if not form.get("To") or not form.get("From"):
                return _error(400, 21201, "To and From are required")
            label = form.get("Label")
            if label and any(p.label == label for p in conference.participants.values()):
                # Twilio refuses a label an active participant of the conference has (16026)
                return _error(400, 16026, "Participant label is in use by another participant")
            form_events: dict[str, Any] = dict(form)
            form_events["StatusCallbackEvent"] = form.get("StatusCallbackEvent", "").split()
            created = self.conferences.create_participant(conference, form_events)
            call = _Call(created.call_sid, created.to, form["From"], "queued", "outbound-api")
            self._calls[call.sid] = call
            body = self.conferences.participant_resource(API, conference, created)
            return JSONResponse(body, status_code=201)

        return await self._handle(request, None, answer)

    async def _participant_one(self, request: Request) -> Response:
        sid = request.path_params["conference_sid"]
        who = request.path_params["participant"]

        def answer(_: str | None, form: dict[str, str]) -> Response:
            conference = self.conferences.by_sid.get(sid)
            participant = self.conferences.find_participant(conference, who) if conference else None
            if conference is None or participant is None:
                return _error(404)
            if request.method == "DELETE":
                self.conferences.remove_participant(conference, participant)
                return Response(status_code=204)
            if request.method == "POST":
                self.conferences.update_participant(conference, participant, form)
            return JSONResponse(self.conferences.participant_resource(API, conference, participant))

        return await self._handle(request, who, answer)

    def _inbound(self, call_sid: str) -> _Call:
        call = _Call(call_sid, "+31000000000", "+31600000000", "in-progress", "inbound")
        self._calls[call_sid] = call
        return call

    def _do_create(self, _: str | None, form: dict[str, str]) -> Response:
        if not form.get("To"):
            return _error(400, 21201, "No 'To' number is specified")
        if not form.get("From"):
            return _error(400, 21603, "A 'From' phone number is required")
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            return _error(400, 21205, "Url parameter is required")
        call = _Call(
            "CA" + secrets.token_hex(16), form["To"], form["From"], "queued", "outbound-api"
        )
        self._calls[call.sid] = call
        return JSONResponse(self._resource(call), status_code=201)

    def _do_update(self, call_sid: str | None, form: dict[str, str]) -> Response:
        assert call_sid is not None
        call = self._calls.get(call_sid) or self._inbound(call_sid)
        if call.status in ("completed", "canceled", "failed", "busy", "no-answer"):
            return _error(400, CALL_NOT_IN_PROGRESS, "Call is not in-progress. Cannot redirect.")
        status = form.get("Status")
        if status is not None:
            if status not in ("completed", "canceled"):
                return _error(400, 21218, f"Invalid Status: {status}")
            call.status = status
            self.conferences.hang_up(call_sid)  # a call in a conference leaves it
        elif not (form.get("Url") or form.get("Twiml")):
            return _error(400, 21205, "Url parameter is required")
        else:
            self.conferences.redirected(call_sid)  # new TwiML: it leaves its conference
        self._leave_queue(call_sid)  # and its queue, whichever the update
        call.updated = datetime.now(UTC)
        return JSONResponse(self._resource(call))

    def _do_fetch(self, call_sid: str | None, _: dict[str, str]) -> Response:
        assert call_sid is not None
        call = self._calls.get(call_sid) or self._inbound(call_sid)
        return JSONResponse(self._resource(call))

    def _resource(self, call: _Call) -> dict[str, Any]:
        uri = f"{API}/Accounts/{self.account_sid}/Calls/{call.sid}"
        return {
            "sid": call.sid,
            "account_sid": self.account_sid,
            "parent_call_sid": None,
            "date_created": _rfc2822(call.created),
            "date_updated": _rfc2822(call.updated),
            "to": call.to,
            "to_formatted": call.to,
            "from": call.from_,
            "from_formatted": call.from_,
            "phone_number_sid": None,
            "status": call.status,
            "start_time": None,
            "end_time": None,
            "duration": None,
            "price": None,
            "price_unit": "EUR",
            "direction": call.direction,
            "answered_by": None,
            "api_version": "2010-04-01",
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "annotation": None,
            "uri": f"{uri}.json",
            "subresource_uris": {
                "notifications": f"{uri}/Notifications.json",
                "recordings": f"{uri}/Recordings.json",
                "payments": f"{uri}/Payments.json",
                "events": f"{uri}/Events.json",
                "siprec": f"{uri}/Siprec.json",
                "streams": f"{uri}/Streams.json",
                "user_defined_message_subscriptions": (
                    f"{uri}/UserDefinedMessageSubscriptions.json"
                ),
                "user_defined_messages": f"{uri}/UserDefinedMessages.json",
            },
        }

    # -- control endpoints (for a stub in another process) ---------------------------------

    async def _control_requests(self, _: Request) -> Response:
        return JSONResponse([asdict(r) for r in self.requests])

    async def _control_fail_next(self, request: Request) -> Response:
        body = await request.json()
        self.fail_next(
            int(body.get("n", 1)),
            status=body.get("status"),
            delay=float(body.get("delay", 0.0)),
            code=body.get("code"),
            call_sid=body.get("call_sid"),
            message=body.get("message"),
            after_effect=bool(body.get("after_effect")),
        )
        return JSONResponse({"ok": True})

    async def _control_hang_up(self, request: Request) -> Response:
        self.hang_up_caller(request.path_params["call_sid"])
        return JSONResponse({"ok": True})

    async def _control_dial(self, request: Request) -> Response:
        body = await request.json()
        conference = self.dial_conference(
            body["call_sid"],
            body["name"],
            action=body.get("action"),
            status_callback=body.get("status_callback"),
            status_callback_event=body.get("status_callback_event", ""),
            label=body.get("label"),
            end_conference_on_exit=bool(body.get("end_conference_on_exit")),
        )
        return JSONResponse({"sid": conference.sid})

    async def _control_answer(self, request: Request) -> Response:
        self.answer(request.path_params["call_sid"])
        return JSONResponse({"ok": True})

    async def _control_no_answer(self, request: Request) -> Response:
        self.no_answer(request.path_params["call_sid"])
        return JSONResponse({"ok": True})

    async def _control_callbacks(self, request: Request) -> Response:
        body = await request.json()
        taken = self.take_callbacks(body.get("offer"))
        return JSONResponse([asdict(c) for c in taken])

    async def _control_enqueue(self, request: Request) -> Response:
        body = await request.json()
        self.enqueue(body["call_sid"], body["queue"])
        return JSONResponse({"ok": True})

    async def _control_reset(self, _: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})


def _page(name: str, items: list[dict[str, Any]], uri: str) -> dict[str, Any]:
    """A list resource page as Twilio answers it (one page; no next page)."""
    return {
        name: items,
        "page": 0,
        "page_size": 50,
        "first_page_uri": uri,
        "previous_page_uri": None,
        "next_page_uri": None,
        "uri": uri,
        "start": 0,
        "end": max(0, len(items) - 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A Twilio-compatible REST stub (Calls API).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument("--account-sid", default=None)
    parser.add_argument("--auth-token", default=None)
    args = parser.parse_args(argv)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler
    # it found: make that an ordinary exit (status 0) instead of death by signal.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_quietly)
    stub = TwilioStub(
        account_sid=args.account_sid, auth_token=args.auth_token, host=args.host, port=args.port
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # Nagle off
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((stub.host, stub.port))
    stub.port = sock.getsockname()[1]
    sock.listen(2048)  # connections made right after the line below wait in the backlog
    # One line a parent process can wait for; the credentials so it can use a generated pair.
    print(f"twilio stub ready {stub.base_url} {stub.account_sid} {stub.auth_token}", flush=True)
    # In the main thread uvicorn handles SIGINT/SIGTERM itself and shuts down cleanly.
    try:
        uvicorn.Server(stub._config()).run(sockets=[sock])
    finally:
        sock.close()


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
