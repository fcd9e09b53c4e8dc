"""Calls placed from a browser phone, through the TwiML App whose voice URL is /twilio/outbound.

Twilio asks what to do with a call a staff member's browser places (`device.connect({params:
{To}})`): `From` is their device (`client:NAME`), `To` what the page asked for. Only a known staff
member may call, and only a phone number (from the KCC's number, so the person called sees
Justis) or a colleague's browser phone; anything else hears why not and the call ends. It is
never an error: Twilio would say "an application error has occurred".
"""

from __future__ import annotations

import re
from enum import StrEnum

from ivr.twiml import document, element, escape_text, say

CLIENT = "client:"
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
LANGUAGE = "nl-NL"  # staff hear Dutch


class Refusal(StrEnum):
    """Why a call from a browser phone is not placed (logged; the caller hears the sentence)."""

    UNKNOWN_CALLER = "unknown_caller"  # From is no active staff member's browser phone
    NO_CALLER_ID = "no_caller_id"  # KCC_CALLER_ID is unset: no number to call out from
    BAD_TARGET = "bad_target"  # To is no phone number and no colleague's browser phone
    NOT_ALLOWED = "not_allowed"  # a number outside the allowed prefixes (KCC_OUTBOUND_PREFIXES)
    FAILED = "failed"  # the check itself failed (the database away)


SPOKEN = {
    Refusal.UNKNOWN_CALLER: "Dit toestel mag niet bellen via het klantcontactcentrum.",
    Refusal.NO_CALLER_ID: "Bellen naar een telefoonnummer is niet ingesteld. Vraag de beheerder.",
    Refusal.BAD_TARGET: "Dit nummer of deze collega kan niet worden gebeld. Controleer het nummer.",
    Refusal.NOT_ALLOWED: "Naar dit nummer mag vanuit het klantcontactcentrum niet worden gebeld.",
    Refusal.FAILED: "Het gesprek kan nu niet worden opgezet. Probeer het zo opnieuw.",
}


def refused(reason: Refusal) -> str:
    return document([say(SPOKEN[reason], language=LANGUAGE), element("Hangup")])


def decide(
    *,
    caller: str,
    to: str,
    staff_devices: frozenset[str],
    caller_id: str | None,
    allowed_prefixes: tuple[str, ...] = ("+31",),
) -> str | Refusal:
    """The TwiML that places the call, or why it is refused. Numbers must start with one of
    `allowed_prefixes`: a stolen staff session must not call premium or foreign numbers at
    the KCC's cost (toll fraud)."""
    if not caller.startswith(CLIENT) or caller not in staff_devices:
        return Refusal.UNKNOWN_CALLER
    if E164.fullmatch(to):
        if not to.startswith(allowed_prefixes):
            return Refusal.NOT_ALLOWED
        if not caller_id:
            return Refusal.NO_CALLER_ID
        target = element("Number", None, escape_text(to))
        return _dial(target, caller_id=caller_id)
    if to.startswith(CLIENT) and to in staff_devices and to != caller:
        # A colleague's browser shows who calls: the caller's own client name.
        target = element("Client", None, escape_text(to.removeprefix(CLIENT)))
        return _dial(target, caller_id=caller)
    return Refusal.BAD_TARGET


def _dial(target: str, *, caller_id: str) -> str:
    # answerOnBridge: the browser hears the far end ring, and the call is answered only when
    # they pick up.
    return document([element("Dial", {"answerOnBridge": True, "callerId": caller_id}, target)])
