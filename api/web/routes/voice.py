"""The browser phone: a Twilio Voice SDK access token for the signed-in staff member's own device.

The token lets the page register `client:NAME` (calls to it ring in the browser) and place calls
through the TwiML App, whose voice URL is /twilio/outbound. It is signed with the API key's
secret and lives an hour; the page asks for a new one before then (the SDK's tokenWillExpire).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant

from api.accounts import browser_identity, device_of
from api.web.deps import ServicesDep, StaffUser
from api.web.errors import WebError
from api.web.refusals import refusals
from flows.errors import ErrorKind

router = APIRouter(prefix="/api", tags=["voice"])


class VoiceNotConfigured(WebError):
    """No API key or TwiML App: the pages keep the simulated phone."""

    kind = ErrorKind.UNAVAILABLE


class VoiceToken(BaseModel):
    token: str  # the JWT for `new Twilio.Device(token)` and `device.updateToken(token)`
    identity: str  # the browser phone's client name (the device is client:<identity>)
    expires_at: datetime


@router.post("/me/voice-token", responses=refusals(ErrorKind.CONFLICT))
def voice_token(services: ServicesDep, user: StaffUser) -> VoiceToken:
    """Advisers and supervisors, for their own device: 503 `voice_not_configured` without the
    Twilio API key and TwiML App; 409 `device_is_a_number` when calls to them ring a phone."""
    settings = services.settings
    if not settings.voice_configured:
        raise VoiceNotConfigured(
            "voice_not_configured",
            "the browser phone needs TWILIO_API_KEY_SID, TWILIO_API_KEY_SECRET and "
            "TWILIO_TWIML_APP_SID",
        )
    identity = browser_identity(device_of(user))
    if identity is None:
        raise WebError(
            "device_is_a_number", "calls to this account ring a phone number, not the browser"
        )
    # Twilio's clock, not the service's (KCC_NOW shifts ours for demos): the real time.
    expires = int(time.time()) + settings.voice_token_ttl_seconds
    token = AccessToken(
        settings.twilio_account_sid,
        settings.twilio_api_key_sid,
        settings.twilio_api_key_secret,
        identity=identity,
        valid_until=expires,
    )
    token.add_grant(
        VoiceGrant(outgoing_application_sid=settings.twilio_twiml_app_sid, incoming_allow=True)
    )
    return VoiceToken(
        token=token.to_jwt(),
        identity=identity,
        expires_at=datetime.fromtimestamp(expires, UTC),
    )
