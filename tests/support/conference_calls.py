"""Whole calls through the conversation's conference: the software phone posts the caller's
webhooks, the Twilio stub plays Twilio (the conference, the adviser's device), and `deliver`
posts every callback the stub made, signed, to the app, until nothing is left.

    call = ConferenceCall(await queued_caller(), twilio_stub)
    await call.connect()                # follow routing's REST redirect into the conference
    twilio_stub.conference(call.conference_name)   # who is in it, held, muted ...
    await call.hang_up()                # the caller hangs up: conference, Dial action, status

With the app in-process (the `http`, `phone` and `twilio_stub` fixtures of tests/conftest.py):

    call, headers = await in_conversation(http, phone, twilio_stub)   # ANN talks to a caller
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from api.cli.phone import Phone, PhoneTurn, parse_twiml
from tests.support.staff import Account, adviser, signed_in
from tests.support.twilio_conferences import Callback, Conference, Participant
from tests.support.twilio_stub import TwilioStub

ANN = adviser("ann", skills=["vog_rp"])
BOB = adviser("bob", skills=["vog_rp"], device="+31201234567")


@dataclass(frozen=True)
class Delivered:
    callback: Callback
    response: httpx.Response


@dataclass
class ConferenceCall:
    phone: Phone
    stub: TwilioStub
    delivered: list[Delivered] = field(default_factory=list)
    conference_name: str | None = None
    # What the caller's <Dial> action answered when the caller left the conference
    after_conference: PhoneTurn | None = None

    @property
    def call_sid(self) -> str:
        return self.phone.call_sid

    async def connect(self) -> PhoneTurn:
        """Twilio follows routing's last redirect of this call; TwiML that joins a conference
        is run by the stub (the caller joins), then the callbacks are delivered."""
        updates = [r for r in self.stub.updates_for(self.call_sid) if r.form.get("Url")]
        if not updates:
            raise AssertionError("routing did not move the call")
        response = await self.phone.post(updates[-1].form["Url"])
        response.raise_for_status()
        turn = parse_twiml(response.text)
        self.join_if_dialled(response.text)
        await self.deliver()
        return turn

    def join_if_dialled(self, twiml: str) -> Conference | None:
        root = ET.fromstring(twiml)
        dial = root.find("Dial")
        conference = dial.find("Conference") if dial is not None else None
        if dial is None or conference is None:
            return None
        self.conference_name = conference.text or ""
        return self.stub.dial_conference(
            self.call_sid,
            self.conference_name,
            action=dial.get("action"),
            status_callback=conference.get("statusCallback"),
            status_callback_event=conference.get("statusCallbackEvent", ""),
            label=conference.get("participantLabel"),
            end_conference_on_exit=conference.get("endConferenceOnExit") == "true",
        )

    async def deliver(self) -> list[Delivered]:
        """Post every waiting callback (and those they cause) to the app, in order."""
        done: list[Delivered] = []
        for _ in range(50):  # a loop of callbacks causing callbacks would be a bug
            batch = self.stub.take_callbacks()
            if not batch:
                return done
            for callback in batch:
                parts = urlsplit(callback.url)
                response = await self.phone.client.post(
                    parts.path + (f"?{parts.query}" if parts.query else ""),
                    data=callback.form,
                    headers={"X-Twilio-Signature": callback.signature},
                )
                assert response.status_code == 200, response.text
                delivered = Delivered(callback, response)
                done.append(delivered)
                self.delivered.append(delivered)
                if "/twilio/dial-result" in callback.url and callback.form["CallSid"] == (
                    self.call_sid
                ):
                    self.after_conference = parse_twiml(response.text)
        raise AssertionError("callbacks kept causing callbacks")

    async def hang_up(self) -> httpx.Response:
        """The caller hangs up: Twilio's conference callbacks, then the number's status."""
        self.stub.hang_up_caller(self.call_sid)
        await self.deliver()
        return await self.phone.hang_up()

    def conference(self) -> Conference:
        assert self.conference_name is not None, "the caller has not joined a conference"
        found = self.stub.conference(self.conference_name)
        assert found is not None
        return found


def participant(conference: Conference, label: str) -> Participant:
    """The one participant of `conference` labelled `label`."""
    [found] = [p for p in conference.participants.values() if p.label == label]
    return found


async def available(http: httpx.AsyncClient, who: dict[str, str]) -> None:
    response = await http.post("/api/advisers/me/status", json={"status": "available"}, headers=who)
    assert response.json()["status"] == "available"


async def status_of(http: httpx.AsyncClient, who: dict[str, str]) -> str:
    return str((await http.get("/api/advisers/me", headers=who)).json()["status"])


async def queued(phone: Callable[..., Phone], stub: TwilioStub) -> ConferenceCall:
    caller = phone()
    await caller.dial()
    await caller.press("2")
    turn = await caller.press("#")
    assert turn.queue == "kcc-vog_rp"
    return ConferenceCall(caller, stub)


async def in_conversation(
    http: httpx.AsyncClient, phone: Callable[..., Phone], stub: TwilioStub, who: Account = ANN
) -> tuple[ConferenceCall, dict[str, str]]:
    """The adviser is available, a caller comes in, their device answers: they talk."""
    headers = await signed_in(http, who)
    await available(http, headers)
    stub.script_device(who.device or f"client:{who.name}", "answers")
    call = await queued(phone, stub)
    await call.connect()
    assert await status_of(http, headers) == "on_call"
    return call, headers
