"""Conferences and Participants as Twilio runs them, for the stub (tests/support/twilio_stub.py).

Twilio's side of a conversation in a conference, kept to what the app relies on:
- a call joins by TwiML (`<Dial action><Conference ...>NAME</Conference></Dial>`): the test tells
  the stub with `dial_conference`, as Twilio would after fetching that TwiML;
- `participants.create` places a call to a device; how the device behaves is scripted per
  device (`script_device`: answers, no-answer, busy, failed; unscripted it keeps ringing);
- participants are held, muted, coached and removed; a participant whose `endConferenceOnExit`
  is set ends the conference when it leaves; the last one to leave ends it too;
- every callback Twilio would send (participant status callbacks, the conference statusCallback
  events, a `<Dial>`'s action when its call leaves) is signed with X-Twilio-Signature and put in
  an outbox; the test delivers them to the app (tests/support/conference_calls.py).

The Participants resource shows only current participants, as Twilio's does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from twilio.request_validator import RequestValidator

DeviceScript = Literal["answers", "no-answer", "busy", "failed", "rings"]
# <Conference statusCallbackEvent> words -> the StatusCallbackEvent values they enable
_EVENT_WORDS = {
    "start": ("conference-start",),
    "end": ("conference-end",),
    "join": ("participant-join",),
    "leave": ("participant-leave",),
    "hold": ("participant-hold", "participant-unhold"),
    "mute": ("participant-mute", "participant-unmute"),
    "modify": ("participant-modify",),
}
FINAL_CALL_STATUSES = ("completed", "no-answer", "busy", "failed", "canceled")


@dataclass(frozen=True)
class Callback:
    """One request Twilio makes to the app, signed as Twilio signs it."""

    url: str
    form: dict[str, str]
    signature: str

    @property
    def event(self) -> str:
        return self.form.get("StatusCallbackEvent") or self.form.get("CallStatus", "")


@dataclass
class Participant:
    call_sid: str
    label: str | None
    to: str
    status: str  # queued, ringing, connected (Twilio's participant statuses)
    end_conference_on_exit: bool = False
    start_conference_on_enter: bool = True
    hold: bool = False
    muted: bool = False
    coaching: bool = False
    call_sid_to_coach: str | None = None
    hold_url: str | None = None
    announced: list[str] = field(default_factory=list)  # AnnounceUrl updates, in order
    status_callback: str | None = None
    status_events: tuple[str, ...] = ()
    dial_action: str | None = None  # joined by <Dial>: its action runs when it leaves
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Conference:
    sid: str
    name: str
    status: str  # init, in-progress, completed
    status_callback: str | None
    events: frozenset[str]
    participants: dict[str, Participant] = field(default_factory=dict)  # current ones only
    left: list[str] = field(default_factory=list)  # CallSids that left, for the tests
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    end_reason: str | None = None


class Conferences:
    """The conference state of one stub; the stub holds its lock around every call here."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self._validator = RequestValidator(auth_token)
        self.by_sid: dict[str, Conference] = {}
        self.devices: dict[str, DeviceScript] = {}
        self.outbox: list[Callback] = []
        self._sequence = 0

    def reset(self) -> None:
        self.by_sid.clear()
        self.devices.clear()
        self.outbox.clear()

    # -- what the tests and TwiML do ---------------------------------------------------------

    def dial_conference(
        self,
        call_sid: str,
        name: str,
        *,
        action: str | None,
        status_callback: str | None,
        status_callback_event: str,
        label: str | None,
        end_conference_on_exit: bool,
        start_conference_on_enter: bool = True,
    ) -> Conference:
        """A call ran `<Dial action><Conference ...>name</Conference></Dial>`."""
        conference = self.in_progress(name)
        if conference is None:
            events = frozenset(
                event for word in status_callback_event.split() for event in _EVENT_WORDS[word]
            )
            conference = Conference(
                sid="CF" + secrets.token_hex(16),
                name=name,
                status="init",
                status_callback=status_callback,
                events=events,
            )
            self.by_sid[conference.sid] = conference
        participant = Participant(
            call_sid=call_sid,
            label=label,
            to="",
            status="connected",
            end_conference_on_exit=end_conference_on_exit,
            start_conference_on_enter=start_conference_on_enter,
            dial_action=action,
        )
        self._join(conference, participant)
        return conference

    def in_progress(self, name: str) -> Conference | None:
        for conference in self.by_sid.values():
            if conference.name == name and conference.status != "completed":
                return conference
        return None

    def hang_up(self, call_sid: str) -> bool:
        """The person on this call hung up; True if it was in (or ringing into) a conference."""
        for conference in list(self.by_sid.values()):
            participant = conference.participants.get(call_sid)
            if participant is None:
                continue
            if participant.status != "connected":  # hung up before answering: never joined
                del conference.participants[call_sid]
                self._call_status(participant, conference, "completed")
            else:
                self._leave(conference, participant, call_status="completed")
            return True
        return False

    def redirected(self, call_sid: str) -> None:
        """A call given new TwiML (a REST redirect) leaves its conference; its <Dial> ends
        without running its action: Twilio fetches the new URL instead."""
        for conference in list(self.by_sid.values()):
            participant = conference.participants.get(call_sid)
            if participant is not None and participant.status == "connected":
                participant.dial_action = None
                self._leave(conference, participant, call_status="in-progress", quietly=True)
                return

    def answer(self, call_sid: str) -> None:
        """A ringing participant's device answers now (for devices left to ring)."""
        for conference in self.by_sid.values():
            participant = conference.participants.get(call_sid)
            if participant is not None and participant.status != "connected":
                self._answered(conference, participant)
                return
        raise KeyError(call_sid)

    def no_answer(self, call_sid: str) -> None:
        """A ringing participant's device stops ringing unanswered (its timeout)."""
        for conference in self.by_sid.values():
            participant = conference.participants.get(call_sid)
            if participant is not None and participant.status != "connected":
                del conference.participants[call_sid]
                self._call_status(participant, conference, "no-answer")
                return
        raise KeyError(call_sid)

    def take_outbox(self, offer: str | None = None) -> list[Callback]:
        """Every waiting callback, or only those whose URL has the query parameter offer=N."""
        if offer is None:
            taken, self.outbox = self.outbox, []
            return taken
        taken = [c for c in self.outbox if _offer_of(c.url) == offer]
        self.outbox = [c for c in self.outbox if _offer_of(c.url) != offer]
        return taken

    # -- the REST resource ---------------------------------------------------------------------

    def create_participant(self, conference: Conference, form: dict[str, Any]) -> Participant:
        events = form.get("StatusCallbackEvent") or ["completed"]
        participant = Participant(
            call_sid="CA" + secrets.token_hex(16),
            label=form.get("Label") or None,
            to=str(form["To"]),
            status="queued",
            end_conference_on_exit=_true(form.get("EndConferenceOnExit")),
            start_conference_on_enter=form.get("StartConferenceOnEnter", "true") == "true",
            muted=_true(form.get("Muted")),
            coaching=_true(form.get("Coaching")),
            call_sid_to_coach=form.get("CallSidToCoach") or None,
            status_callback=form.get("StatusCallback") or None,
            status_events=tuple(events),
        )
        conference.participants[participant.call_sid] = participant
        self._call_status(participant, conference, "initiated")
        script = self.devices.get(participant.to, "rings")
        if script == "busy":
            del conference.participants[participant.call_sid]
            self._call_status(participant, conference, "busy")
            return participant
        if script == "failed":
            del conference.participants[participant.call_sid]
            self._call_status(participant, conference, "failed")
            return participant
        participant.status = "ringing"
        self._call_status(participant, conference, "ringing")
        if script == "answers":
            self._answered(conference, participant)
        elif script == "no-answer":
            del conference.participants[participant.call_sid]
            self._call_status(participant, conference, "no-answer")
        return participant

    def update_participant(
        self, conference: Conference, participant: Participant, form: dict[str, Any]
    ) -> None:
        if "HoldUrl" in form:
            participant.hold_url = str(form["HoldUrl"])
        if "Hold" in form:
            hold = _true(form["Hold"])
            if hold != participant.hold:
                participant.hold = hold
                self._event(
                    conference, "participant-hold" if hold else "participant-unhold", participant
                )
        if "Muted" in form:
            muted = _true(form["Muted"])
            if muted != participant.muted:
                participant.muted = muted
                self._event(
                    conference, "participant-mute" if muted else "participant-unmute", participant
                )
        if "AnnounceUrl" in form:
            # Twilio fetches this TwiML and plays it to this participant only.
            participant.announced.append(str(form["AnnounceUrl"]))
        if "Coaching" in form:
            participant.coaching = _true(form["Coaching"])
        if "CallSidToCoach" in form:
            participant.call_sid_to_coach = str(form["CallSidToCoach"]) or None
        if "EndConferenceOnExit" in form:
            participant.end_conference_on_exit = _true(form["EndConferenceOnExit"])
        conference.updated = datetime.now(UTC)

    def remove_participant(self, conference: Conference, participant: Participant) -> None:
        if participant.status != "connected":
            del conference.participants[participant.call_sid]
            self._call_status(participant, conference, "canceled")
            return
        self._leave(conference, participant, call_status="in-progress")

    def end(self, conference: Conference, reason: str = "Conference ended via API") -> None:
        if conference.status == "completed":
            return
        conference.end_reason = reason
        for participant in list(conference.participants.values()):
            if participant.status != "connected":
                del conference.participants[participant.call_sid]
                self._call_status(participant, conference, "canceled")
            else:
                self._leave(conference, participant, call_status="in-progress", ending=True)
        self._finish(conference)

    # -- Twilio's behaviour ---------------------------------------------------------------------

    def _join(self, conference: Conference, participant: Participant) -> None:
        participant.status = "connected"
        conference.participants[participant.call_sid] = participant
        if conference.status == "init" and participant.start_conference_on_enter:
            conference.status = "in-progress"
            self._event(conference, "conference-start", None)
        self._event(conference, "participant-join", participant)

    def _answered(self, conference: Conference, participant: Participant) -> None:
        self._call_status(participant, conference, "in-progress")
        self._join(conference, participant)

    def _leave(
        self,
        conference: Conference,
        participant: Participant,
        *,
        call_status: str,
        ending: bool = False,
        quietly: bool = False,
    ) -> None:
        conference.participants.pop(participant.call_sid, None)
        conference.left.append(participant.call_sid)
        self._event(conference, "participant-leave", participant)
        if participant.dial_action is not None:
            # A caller's <Dial> goes on with its action; one who hung up is gone (completed).
            self._send(
                participant.dial_action,
                {
                    "AccountSid": self.account_sid,
                    "CallSid": participant.call_sid,
                    "CallStatus": call_status,
                    "DialCallStatus": "completed",
                    "ConferenceSid": conference.sid,
                },
            )
        elif not quietly:
            # A call Twilio placed into the conference ends when it leaves.
            self._call_status(participant, conference, "completed")
        if ending:
            return
        if participant.end_conference_on_exit:
            conference.end_reason = "Participant with 'endConferenceOnExit' left"
            self.end(conference, conference.end_reason)
        elif not any(p.status == "connected" for p in conference.participants.values()):
            conference.end_reason = "Last participant left"
            self.end(conference, conference.end_reason)

    def _finish(self, conference: Conference) -> None:
        conference.status = "completed"
        conference.updated = datetime.now(UTC)
        self._event(conference, "conference-end", None)

    def _event(self, conference: Conference, event: str, participant: Participant | None) -> None:
        if conference.status_callback is None or event not in conference.events:
            return
        self._sequence += 1
        form = {
            "AccountSid": self.account_sid,
            "ConferenceSid": conference.sid,
            "FriendlyName": conference.name,
            "StatusCallbackEvent": event,
            "SequenceNumber": str(self._sequence),
            "Timestamp": datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000"),
        }
        if participant is not None:
            form |= {
                "CallSid": participant.call_sid,
                "ParticipantLabel": participant.label or "",
                "Hold": _bool(participant.hold),
                "Muted": _bool(participant.muted),
                "Coaching": _bool(participant.coaching),
                "EndConferenceOnExit": _bool(participant.end_conference_on_exit),
                "StartConferenceOnEnter": _bool(participant.start_conference_on_enter),
            }
        if event == "conference-end" and conference.end_reason:
            form["ReasonConferenceEnded"] = conference.end_reason
        self._send(conference.status_callback, form)

    def _call_status(self, participant: Participant, conference: Conference, status: str) -> None:
        """A participant status callback (the events asked for at create)."""
        word = {"in-progress": "answered"}.get(status, status)
        if word in FINAL_CALL_STATUSES:
            word = "completed"
        if participant.status_callback is None or word not in participant.status_events:
            return
        self._sequence += 1
        self._send(
            participant.status_callback,
            {
                "AccountSid": self.account_sid,
                "CallSid": participant.call_sid,
                "CallStatus": status,
                "ConferenceSid": conference.sid,
                "To": participant.to,
                "Direction": "outbound-api",
                "CallbackSource": "call-progress-events",
                "SequenceNumber": str(self._sequence),
            },
        )

    def _send(self, url: str, form: dict[str, str]) -> None:
        self.outbox.append(Callback(url, form, self._validator.compute_signature(url, form)))

    # -- resources as JSON ----------------------------------------------------------------------

    def conference_resource(self, api: str, conference: Conference) -> dict[str, Any]:
        uri = f"{api}/Accounts/{self.account_sid}/Conferences/{conference.sid}"
        return {
            "sid": conference.sid,
            "account_sid": self.account_sid,
            "friendly_name": conference.name,
            "status": conference.status,
            "region": "ie1",
            "date_created": _rfc2822(conference.created),
            "date_updated": _rfc2822(conference.updated),
            "api_version": "2010-04-01",
            "reason_conference_ended": None,
            "call_sid_ending_conference": None,
            "uri": f"{uri}.json",
            "subresource_uris": {
                "participants": f"{uri}/Participants.json",
                "recordings": f"{uri}/Recordings.json",
            },
        }

    def participant_resource(
        self, api: str, conference: Conference, participant: Participant
    ) -> dict[str, Any]:
        uri = f"{api}/Accounts/{self.account_sid}/Conferences/{conference.sid}"
        return {
            "account_sid": self.account_sid,
            "call_sid": participant.call_sid,
            "label": participant.label,
            "call_sid_to_coach": participant.call_sid_to_coach,
            "coaching": participant.coaching,
            "conference_sid": conference.sid,
            "date_created": _rfc2822(participant.created),
            "date_updated": _rfc2822(datetime.now(UTC)),
            "end_conference_on_exit": participant.end_conference_on_exit,
            "muted": participant.muted,
            "hold": participant.hold,
            "start_conference_on_enter": participant.start_conference_on_enter,
            "status": participant.status,
            "queue_time": None,
            "uri": f"{uri}/Participants/{participant.call_sid}.json",
        }

    def find_participant(self, conference: Conference, sid_or_label: str) -> Participant | None:
        found = conference.participants.get(sid_or_label)
        if found is not None:
            return found
        for participant in conference.participants.values():
            if participant.label == sid_or_label:
                return participant
        return None


def _offer_of(url: str) -> str | None:
    return parse_qs(urlsplit(url).query).get("offer", [None])[0]


def _true(value: Any) -> bool:
    return str(value).lower() == "true"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _rfc2822(at: datetime) -> str:
    from email.utils import format_datetime

    return format_datetime(at.astimezone(UTC), usegmt=False)
