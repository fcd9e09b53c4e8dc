"""A phone in software: walks a call through the webhooks as Twilio would, signing each request.

Used by `kcc call` (against a running server or the app in-process), by the tests and by the
benchmark. It follows what the TwiML says: <Say> is heard, <Gather> waits for keys (no keys:
the <Redirect> after it), <Enqueue> joins the queue and fetches the waitUrl, <Hangup> ends.
"""

from __future__ import annotations

import json
import secrets
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from twilio.request_validator import RequestValidator

# The call's events, in the demo (api/web/routes/demo.py).
EVENTS_PATH = "/demo/calls/{call_sid}/events"


@dataclass(frozen=True)
class Heard:
    text: str
    language: str


@dataclass
class PhoneTurn:
    """What one webhook answered."""

    twiml: str
    heard: list[Heard] = field(default_factory=list)
    gather_url: str | None = None  # where keys go
    finish_on_key: str = "#"
    action_on_empty: bool = False  # silence (or the finish key alone) is posted to gather_url
    no_input_url: str | None = None  # where silence goes otherwise
    queue: str | None = None  # <Enqueue> queue name
    wait_url: str | None = None
    queue_result_url: str | None = None
    hung_up: bool = False

    @property
    def waiting_for_keys(self) -> bool:
        return self.gather_url is not None

    @property
    def text(self) -> str:
        return " ".join(h.text for h in self.heard)


def parse_twiml(twiml: str) -> PhoneTurn:
    root = ET.fromstring(twiml)
    if root.tag != "Response":
        raise ValueError(f"TwiML root is <{root.tag}>, not <Response>")
    turn = PhoneTurn(twiml=twiml)
    for verb in root:
        if verb.tag == "Say":
            turn.heard.append(Heard(verb.text or "", verb.get("language", "")))
        elif verb.tag == "Gather":
            turn.gather_url = verb.get("action")
            turn.finish_on_key = verb.get("finishOnKey", "#")
            turn.action_on_empty = verb.get("actionOnEmptyResult") == "true"
            turn.heard.extend(Heard(s.text or "", s.get("language", "")) for s in verb.iter("Say"))
        elif verb.tag == "Redirect":
            turn.no_input_url = verb.text
            break  # Twilio follows a Redirect at once
        elif verb.tag == "Enqueue":
            turn.queue = verb.text
            turn.wait_url = verb.get("waitUrl")
            turn.queue_result_url = verb.get("action")
        elif verb.tag == "Hangup":
            turn.hung_up = True
    return turn


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


class Phone:
    """One call. `client` may talk to a real server or to the app through ASGITransport."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        public_url: str,
        auth_token: str,
        caller: str = "+31612345678",
        to: str = "+31703704900",
        call_sid: str | None = None,
    ) -> None:
        self.client = client
        self.public_url = public_url.rstrip("/")
        self.validator = RequestValidator(auth_token)
        self.caller = caller
        self.to = to
        self.call_sid = call_sid or new_call_sid()
        self.last: PhoneTurn | None = None

    def _params(self, extra: dict[str, str]) -> dict[str, str]:
        return {
            "CallSid": self.call_sid,
            "AccountSid": "AC" + "0" * 32,
            "From": self.caller,
            "Caller": self.caller,
            "To": self.to,
            "Direction": "inbound",
            "CallStatus": "in-progress",
            **extra,
        }

    async def post(self, url: str, extra: dict[str, str] | None = None) -> httpx.Response:
        """POST as Twilio does: form body, signature over the public URL and the parameters."""
        params = self._params(extra or {})
        signature = self.validator.compute_signature(url, params)
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return await self.client.post(path, data=params, headers={"X-Twilio-Signature": signature})

    async def follow(self, url: str, extra: dict[str, str] | None = None) -> PhoneTurn:
        """Run the TwiML at `url` as Twilio does when a verb's action takes the call there."""
        return await self._turn(url, extra)

    async def _turn(self, url: str, extra: dict[str, str] | None = None) -> PhoneTurn:
        response = await self.post(url, extra)
        response.raise_for_status()
        self.last = parse_twiml(response.text)
        return self.last

    async def dial(self) -> PhoneTurn:
        return await self._turn(f"{self.public_url}/twilio/voice", {"CallStatus": "ringing"})

    async def press(self, digits: str) -> PhoneTurn:
        """Type keys. As Twilio does, the finish key ends the input and is not sent."""
        last = self.last
        if last is None or last.gather_url is None:
            raise RuntimeError("the call is not waiting for keys")
        if last.finish_on_key and last.finish_on_key in digits:
            digits = digits[: digits.index(last.finish_on_key)]
        if not digits and not last.action_on_empty:
            return await self.stay_silent()  # an empty result runs the next verb instead
        return await self._turn(last.gather_url, {"Digits": digits})

    async def stay_silent(self) -> PhoneTurn:
        last = self.last
        if last is not None and last.gather_url is not None and last.action_on_empty:
            return await self._turn(last.gather_url, {"Digits": ""})
        if last is None or last.no_input_url is None:
            raise RuntimeError("the call is not waiting for keys")
        return await self._turn(last.no_input_url)

    async def hold(self, position: int = 1) -> PhoneTurn:
        """Fetch the waitUrl once, as Twilio does while the caller waits."""
        if self.last is None or self.last.wait_url is None:
            raise RuntimeError("the call is not in a queue")
        extra = {"QueuePosition": str(position), "QueueSid": "QU" + "0" * 32, "QueueTime": "0"}
        response = await self.post(self.last.wait_url, extra)
        response.raise_for_status()
        return parse_twiml(response.text)

    async def hang_up(self, status: str = "completed") -> httpx.Response:
        return await self.post(
            f"{self.public_url}/twilio/status", {"CallStatus": status, "CallDuration": "42"}
        )

    async def events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """What the adviser's side does with this call (the demo's server-sent events, signed
        like a webhook): ("listening", {}) first, then offered, answered, returned, ended, held,
        unheld, transferred. Ends at once when the server has no such stream (not a demo)."""
        path = EVENTS_PATH.format(call_sid=self.call_sid)
        signature = self.validator.compute_signature(f"{self.public_url}{path}", {})
        headers = {"X-Twilio-Signature": signature, "Accept": "text/event-stream"}
        async with self.client.stream("GET", path, headers=headers, timeout=None) as response:
            if response.status_code == 404:
                return
            response.raise_for_status()
            event, data = "", ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif not line and event:
                    yield event, json.loads(data or "{}")
                    event, data = "", ""
                elif not line:
                    data = ""
