"""The browser phone's server side: the Voice SDK access token (POST /api/me/voice-token) and the
TwiML App's voice URL (POST /twilio/outbound), which places the calls a browser makes."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from twilio.request_validator import RequestValidator

from api.accounts import Role
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL
from tests.support.staff import Account, add_staff, adviser, signed_in, supervisor

API_KEY_SID = "SK" + "0123456789abcdef" * 2
API_KEY_SECRET = "test-api-key-secret-0123456789abcdef"
TWIML_APP_SID = "AP" + "fedcba9876543210" * 2
KCC_NUMBER = "+31703704900"  # make_settings' caller_id
VOICE = {
    "twilio_api_key_sid": API_KEY_SID,
    "twilio_api_key_secret": API_KEY_SECRET,
    "twilio_twiml_app_sid": TWIML_APP_SID,
}
ANNA = adviser("anna")  # the browser phone client:anna
PIET = adviser("piet", device="+31201234567")  # calls to him ring a phone
SANNE = supervisor("sanne")  # client:sanne
BRAM = supervisor("bram.de-wit")  # client:bram_de_wit
GONE = adviser("gone")


@pytest.fixture
def voice_app(make_app: Callable[..., FastAPI]) -> FastAPI:
    app = make_app(**VOICE)
    add_staff(app.state.services.db_engine, ANNA, PIET, SANNE, BRAM, GONE)
    return app


@pytest.fixture
async def voice_http(voice_app: FastAPI) -> Any:
    transport = httpx.ASGITransport(app=voice_app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
        yield client


def _claims(token: str) -> dict[str, Any]:
    """The token checked as Twilio checks it: signed with the API key's secret (HS256)."""
    claims: dict[str, Any] = jwt.decode(token, API_KEY_SECRET, algorithms=["HS256"])
    assert jwt.get_unverified_header(token)["cty"] == "twilio-fpa;v=1"
    return claims


async def _token(http: httpx.AsyncClient, account: Account) -> httpx.Response:
    return await http.post("/api/me/voice-token", headers=await signed_in(http, account))


# -- the access token -------------------------------------------------------------------------


async def test_an_adviser_gets_a_voice_token_for_their_own_browser_phone(
    voice_http: httpx.AsyncClient,
) -> None:
    before = int(time.time())
    response = await _token(voice_http, ANNA)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["identity"] == "anna"
    claims = _claims(body["token"])
    assert claims["iss"] == API_KEY_SID
    assert claims["sub"] == ACCOUNT_SID
    assert claims["grants"] == {
        "identity": "anna",
        "voice": {"incoming": {"allow": True}, "outgoing": {"application_sid": TWIML_APP_SID}},
    }
    # An hour, and the page is told when it ends.
    assert before + 3600 <= claims["exp"] <= int(time.time()) + 3600
    assert datetime.fromisoformat(body["expires_at"]).timestamp() == claims["exp"]


async def test_a_token_signed_with_another_secret_would_not_pass(
    voice_http: httpx.AsyncClient,
) -> None:
    token = (await _token(voice_http, ANNA)).json()["token"]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "not-the-api-key-secret-0123456789abcd", algorithms=["HS256"])


async def test_a_supervisors_token_names_the_supervisors_own_device(
    voice_http: httpx.AsyncClient,
) -> None:
    for account, identity in ((SANNE, "sanne"), (BRAM, "bram_de_wit")):
        response = await _token(voice_http, account)
        assert response.status_code == 200, response.text
        assert response.json()["identity"] == identity
        assert _claims(response.json()["token"])["grants"]["identity"] == identity
    assert SANNE.role is Role.SUPERVISOR


async def test_without_sign_in_there_is_no_voice_token(voice_http: httpx.AsyncClient) -> None:
    response = await voice_http.post("/api/me/voice-token")
    assert response.status_code == 401
    assert response.json()["code"] == "not_signed_in"
    forged = await voice_http.post(
        "/api/me/voice-token", headers={"Authorization": "Bearer not-a-token"}
    )
    assert forged.status_code == 401


async def test_an_adviser_whose_device_is_a_phone_number_gets_no_browser_token(
    voice_http: httpx.AsyncClient,
) -> None:
    response = await _token(voice_http, PIET)
    assert response.status_code == 409
    assert response.json()["code"] == "device_is_a_number"


async def test_without_twilio_api_key_the_demo_keeps_its_simulated_phone(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app()  # no API key, no TwiML App
    add_staff(app.state.services.db_engine, ANNA)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:
        response = await _token(http, ANNA)
    assert response.status_code == 503
    assert response.json()["code"] == "voice_not_configured"


# -- calls placed from the browser: /twilio/outbound -------------------------------------------


async def _outbound(http: httpx.AsyncClient, **form: str) -> ET.Element:
    """What Twilio sends when a browser calls device.connect({params: {To}}), signed."""
    params = {
        "AccountSid": ACCOUNT_SID,
        "ApplicationSid": TWIML_APP_SID,
        "CallSid": "CA" + "b" * 32,
        "Direction": "inbound",
        **form,
    }
    url = f"{PUBLIC_URL}/twilio/outbound"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    response = await http.post(url, data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/xml"
    return ET.fromstring(response.text)


def _spoken(twiml: ET.Element) -> str:
    say = twiml.find("Say")
    assert say is not None and say.get("language") == "nl-NL"
    assert twiml.find("Hangup") is not None and twiml.find("Dial") is None
    return say.text or ""


async def test_an_adviser_calls_a_number_from_the_kcc_number(
    voice_http: httpx.AsyncClient,
) -> None:
    twiml = await _outbound(voice_http, From="client:anna", Caller="client:anna", To="+31612345678")
    dial = twiml.find("Dial")
    assert dial is not None
    assert dial.get("callerId") == KCC_NUMBER
    assert dial.get("answerOnBridge") == "true"
    assert dial.findtext("Number") == "+31612345678"


async def test_a_supervisor_calls_a_colleagues_browser_phone(
    voice_http: httpx.AsyncClient,
) -> None:
    twiml = await _outbound(voice_http, From="client:sanne", To="client:anna")
    dial = twiml.find("Dial")
    assert dial is not None
    assert dial.get("callerId") == "client:sanne"  # anna's page shows who calls
    assert dial.findtext("Client") == "anna"


@pytest.mark.parametrize(
    ("form", "heard"),
    [
        ({"From": "client:stranger", "To": "+31612345678"}, "mag niet bellen"),
        ({"From": "+31612345678", "To": "+31612345678"}, "mag niet bellen"),
        ({"To": "+31612345678"}, "mag niet bellen"),
        ({"From": "client:anna", "To": "0612345678"}, "kan niet worden gebeld"),
        ({"From": "client:anna", "To": "client:stranger"}, "kan niet worden gebeld"),
        ({"From": "client:anna", "To": "client:anna"}, "kan niet worden gebeld"),
        ({"From": "client:anna"}, "kan niet worden gebeld"),
        ({"From": "client:anna", "To": "+31 6 1234 5678<Hangup/>"}, "kan niet worden gebeld"),
        ({"From": "client:anna", "To": "+882123456789"}, "mag vanuit het klantcontactcentrum niet"),
        ({"From": "client:anna", "To": "+3212345678"}, "mag vanuit het klantcontactcentrum niet"),
    ],
    ids=[
        "unknown client",
        "a phone as caller",
        "no caller",
        "not E.164",
        "unknown colleague",
        "oneself",
        "no target",
        "markup",
        "an international premium number",
        "abroad (Belgium)",
    ],
)
async def test_a_call_that_is_not_allowed_hears_why_and_ends(
    voice_http: httpx.AsyncClient, form: dict[str, str], heard: str
) -> None:
    assert heard in _spoken(await _outbound(voice_http, **form))


async def test_a_disabled_account_can_no_longer_call_out(
    voice_app: FastAPI, voice_http: httpx.AsyncClient
) -> None:
    from sqlmodel import Session

    from api.accounts import get_user

    with Session(voice_app.state.services.db_engine) as session:
        user = get_user(session, GONE.name)
        assert user is not None
        user.active = False
        session.add(user)
        session.commit()
    assert "mag niet bellen" in _spoken(
        await _outbound(voice_http, From="client:gone", To="+31612345678")
    )
    assert "kan niet worden gebeld" in _spoken(
        await _outbound(voice_http, From="client:anna", To="client:gone")
    )


async def test_calling_a_number_without_a_kcc_number_is_refused_aloud(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(caller_id=None, **VOICE)
    add_staff(app.state.services.db_engine, ANNA, SANNE)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:
        assert "niet ingesteld" in _spoken(
            await _outbound(http, From="client:anna", To="+31612345678")
        )
        # Colleagues need no KCC number.
        assert (await _outbound(http, From="client:anna", To="client:sanne")).find("Dial")


async def test_the_allowed_prefixes_are_a_setting(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(outbound_prefixes="+31,+32", **VOICE)
    add_staff(app.state.services.db_engine, ANNA)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as http:
        dial = (await _outbound(http, From="client:anna", To="+3212345678")).find("Dial")
        assert dial is not None and dial.findtext("Number") == "+3212345678"
        assert "niet worden gebeld" in _spoken(
            await _outbound(http, From="client:anna", To="+4412345678")
        )


async def test_an_unsigned_outbound_request_places_no_call(
    voice_http: httpx.AsyncClient,
) -> None:
    response = await voice_http.post(
        f"{PUBLIC_URL}/twilio/outbound",
        data={"From": "client:anna", "To": "+31612345678"},
        headers={"X-Twilio-Signature": "forged"},
    )
    assert response.status_code == 403
    assert "Dial" not in response.text


async def test_the_database_away_still_answers_a_spoken_refusal(
    voice_app: FastAPI, voice_http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.webhooks import handlers

    def away(*args: object) -> frozenset[str]:
        raise ConnectionError("database away")

    monkeypatch.setattr(handlers, "_staff_devices", away)
    assert "Probeer het zo opnieuw" in _spoken(
        await _outbound(voice_http, From="client:anna", To="+31612345678")
    )
