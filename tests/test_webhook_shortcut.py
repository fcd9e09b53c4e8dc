"""Webhooks skip the app's inner layers (api/twilio_routes.py WebhookShortcut); what the app
guarantees around them must hold all the same."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest
from fastapi import FastAPI
from fastapi.requests import Request

from api import twilio_routes
from ivr.fallback import LAST_RESORT
from tests.conftest import PUBLIC_URL


async def test_an_unexpected_error_in_a_webhook_still_answers_the_last_resort_twiml(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(request: Request) -> dict[str, str]:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(twilio_routes, "verified_form", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
        response = await client.post("/twilio/step?seq=1", data={"CallSid": "CA1"})
    assert response.status_code == 200
    root = ET.fromstring(response.text)
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root[0].text == LAST_RESORT


async def test_other_methods_and_unknown_webhooks_still_go_to_the_router(
    http: httpx.AsyncClient,
) -> None:
    assert (await http.get("/twilio/voice")).status_code == 405
    assert (await http.post("/twilio/nothing-here", data={"CallSid": "CA1"})).status_code == 404
    assert (await http.post("/twilio/voice", data={"CallSid": "CA1"})).status_code == 403
