"""The advisers' API over HTTP: what supervisors see of a call (never the caller's context), and
the desk's report of its browser phone."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from api.cli.phone import Phone
from routing.board import AdviserState
from tests.conftest import PUBLIC_URL
from tests.support.routing_calls import ANN, queued_vog_rp, set_status, staff
from tests.support.staff import SANNE, signed_in

__all__ = ["staff"]  # the fixture, used by name

CALLER_CONTEXT = {"caller", "call_sid", "path", "application_number", "verification", "language"}


@pytest.mark.usefixtures("staff")
async def test_supervisors_see_product_theme_and_since_of_a_call_but_not_the_caller(
    http: httpx.AsyncClient, phone: Callable[..., Phone]
) -> None:
    ann = await signed_in(http, ANN)
    await set_status(http, ann, "available")
    caller = await queued_vog_rp(phone)
    await caller.post(f"{PUBLIC_URL}/twilio/offer-answered?offer=1", {"CallStatus": "in-progress"})
    supervisor = await signed_in(http, SANNE)
    [seen] = (await http.get("/api/advisers", headers=supervisor)).raise_for_status().json()
    assert seen["status"] == "on_call"
    assert set(seen["call"]) == {"product", "theme", "since"}
    assert seen["call"]["product"] == "vog_rp" and seen["call"]["since"] is not None
    assert caller.caller not in str(seen) and caller.call_sid not in str(seen)
    assert not CALLER_CONTEXT & set(seen["call"])
    # The adviser who talks to the caller sees the context, as before.
    mine = (await http.get("/api/advisers/me", headers=ann)).json()
    assert mine["call"]["caller"] == caller.caller


@pytest.mark.usefixtures("staff")
async def test_the_desk_reports_its_browser_phone_and_bad_reports_are_refused(
    http: httpx.AsyncClient, app: FastAPI
) -> None:
    ann = await signed_in(http, ANN)
    url = "/api/advisers/me/presence"
    ok = await http.post(url, json={"desk": "tab-1", "phone": "unregistered"}, headers=ann)
    assert ok.status_code == 204
    bad = await http.post(url, json={"desk": "tab 1!", "phone": "registered"}, headers=ann)
    assert (bad.status_code, bad.json()["code"]) == (422, "request_invalid")
    assert "desk" in str(bad.json()["detail"])
    bad = await http.post(url, json={"desk": "tab-1", "phone": "maybe"}, headers=ann)
    assert bad.status_code == 422 and "phone" in str(bad.json()["detail"])
    supervisor = await signed_in(http, SANNE)
    refused = await http.post(url, json={"desk": "t", "phone": "registered"}, headers=supervisor)
    assert refused.status_code == 403
    view = await app.state.services.router.board.view("ann")
    assert view is not None and view.state is AdviserState.OFFLINE  # a report alone changes nothing
