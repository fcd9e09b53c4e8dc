"""The JSON API: opening hours for anyone, the waiting calls for supervisors only."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from api.cli.phone import Phone
from api.settings import DEFAULT_FLOW
from api.web.routes.config import staff_config
from flows.loader import load_flow, parse_flow
from tests.support.flow_drafts import TEXT
from tests.support.staff import AHMED, SANNE, add_staff, signed_in


@pytest.fixture
def staff(app: FastAPI) -> None:
    add_staff(app.state.services.db_engine, SANNE, AHMED)


@pytest.mark.parametrize(
    ("at", "is_open", "reason", "next_open"),
    [
        ("2026-12-01T08:59:00+01:00", False, None, "2026-12-01T09:00:00+01:00"),
        ("2026-12-01T09:00:00+01:00", True, None, "2026-12-01T09:00:00+01:00"),
        ("2026-12-01T16:59:00+01:00", True, None, "2026-12-01T16:59:00+01:00"),
        ("2026-12-01T17:00:00+01:00", False, None, "2026-12-02T09:00:00+01:00"),
        (
            "2026-12-05T12:00:00+01:00",
            False,
            "Het klantcontactcentrum is in het weekend gesloten.",
            "2026-12-07T09:00:00+01:00",
        ),
        ("2026-04-27T10:00:00+02:00", False, "Koningsdag", "2026-04-28T09:00:00+02:00"),
        ("2026-05-14T10:00:00+02:00", False, "Hemelvaartsdag", "2026-05-15T09:00:00+02:00"),
        ("2026-12-25T10:00:00+01:00", False, "Eerste kerstdag", "2026-12-28T09:00:00+01:00"),
        ("2026-10-26T07:59:00+00:00", False, None, "2026-10-26T09:00:00+01:00"),
        ("2026-03-30T07:00:00+00:00", True, None, "2026-03-30T09:00:00+02:00"),
    ],
)
async def test_hours_answers_open_reason_and_next_open(
    http: httpx.AsyncClient, at: str, is_open: bool, reason: str | None, next_open: str
) -> None:
    response = await http.get("/api/hours", params={"at": at})
    assert response.status_code == 200
    body = response.json()
    assert body["open"] is is_open
    assert body["reason"] == reason
    assert body["next_open"] == next_open


async def test_hours_in_english(http: httpx.AsyncClient) -> None:
    body = (
        await http.get("/api/hours", params={"at": "2026-04-27T10:00:00+02:00", "lang": "en"})
    ).json()
    assert body["reason"] == "King's Day"
    assert body["announcement"] == "Today is King's Day. The contact centre is closed today."


@pytest.mark.parametrize(
    ("lang", "reason"),
    [
        ("nl", "Het klantcontactcentrum is in het weekend gesloten."),
        ("en", "The contact centre is closed at weekends."),
    ],
)
async def test_hours_give_the_reason_on_a_weekend(
    http: httpx.AsyncClient, lang: str, reason: str
) -> None:
    for at in ("2026-12-05T10:00:00+01:00", "2026-12-06T18:00:00+01:00"):  # Saturday, Sunday
        body = (await http.get("/api/hours", params={"at": at, "lang": lang})).json()
        assert body["open"] is False
        assert body["reason"] == reason
        assert body["announcement"] is None
        assert body["next_open"] == "2026-12-07T09:00:00+01:00"


async def test_hours_on_christmas_eve_announce_the_days_own_closing_time(
    http: httpx.AsyncClient,
) -> None:
    at = "2026-12-24T16:30:00+01:00"
    nl = (await http.get("/api/hours", params={"at": at})).json()
    en = (await http.get("/api/hours", params={"at": at, "lang": "en"})).json()
    assert (
        nl["announcement"] == "Op 24 december is het klantcontactcentrum bereikbaar tot 15.00 uur."
    )
    assert en["announcement"] == "On 24 December the contact centre is open until 3 pm."
    assert nl["reason"] == nl["announcement"]


async def test_hours_without_a_utc_offset_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/hours", params={"at": "2026-12-01T10:00:00"})
    assert response.status_code == 422
    assert "UTC offset" in response.text


async def test_hours_without_at_uses_the_clock(http: httpx.AsyncClient) -> None:
    body = (await http.get("/api/hours")).json()
    assert body["open"] is True  # the test clock stands on a Tuesday at 10:00


async def test_queue_needs_a_signed_in_user(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/queue")
    assert response.status_code == 401


PUBLIC_API = {"/api/hours", "/api/token"}


async def test_every_api_route_but_hours_and_sign_in_needs_a_signed_in_user(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    """Walks the app's own route list (its OpenAPI paths), so that a route added later without
    sign-in fails here."""
    checked = []
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith("/api/") or path in PUBLIC_API:
            continue
        url = re.sub(r"\{[^}]+\}", "1", path)
        for method in operations:
            response = await http.request(method.upper(), url)
            assert response.status_code == 401, (method, path, response.status_code)
            checked.append(path)
    assert "/api/config" in checked and "/api/queue" in checked and len(checked) > 15


@pytest.mark.usefixtures("staff")
async def test_the_desk_configuration_is_for_signed_in_staff(http: httpx.AsyncClient) -> None:
    headers = await signed_in(http, AHMED)
    body = (await http.get("/api/config", headers=headers)).json()
    assert body["languages"] == ["nl", "en"]
    assert isinstance(body["simulated_telephony"], bool)
    # The labels of the live flow, in its first language by default.
    assert body["language"] == "nl"
    assert body["products"]["vog_np"] == "VOG natuurlijk persoon"
    assert body["themes"]["status"] == "Status aanvraag"
    assert body["themes"]["general"] == "Overig"
    assert body["nodes"]["main_menu"] == "Hoofdmenu"
    assert "welcome" not in body["nodes"]  # no label: the desk names it by its kind or id
    assert body["node_kinds"]["verify_vog_rp"] == "verify"
    flow = load_flow(DEFAULT_FLOW)
    assert set(body["products"]) == set(flow.products)
    assert set(body["themes"]) == {
        "status",
        "procedure",
        "objection",
        "childcare",
        "other",
        "general",
    }
    assert set(body["node_kinds"]) == set(flow.nodes)

    english = (await http.get("/api/config?lang=en", headers=headers)).json()
    assert english["language"] == "en"
    assert english["products"]["vog_np"] == "Certificate of conduct, natural person"
    assert english["nodes"]["main_menu"] == "Main menu"
    unknown = (await http.get("/api/config?lang=de", headers=headers)).json()
    assert unknown["language"] == "nl" and unknown["products"] == body["products"]


def test_a_product_or_theme_without_a_label_is_shown_by_its_id() -> None:
    text = TEXT[: TEXT.index("\nlabels:\n")] + TEXT[TEXT.index("\ncalendar:\n") :]
    config = staff_config(parse_flow(text), "nl", simulated_telephony=True)
    assert config.products["vog_np"] == "vog_np"
    assert config.themes["status"] == "status"
    assert config.nodes == {}


@pytest.mark.usefixtures("staff")
async def test_queue_is_for_supervisors_only(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/queue", headers=await signed_in(http, AHMED))
    assert response.status_code == 403
    assert response.json()["detail"] == "requires role supervisor"


@pytest.mark.usefixtures("staff")
async def test_queue_lists_waiting_calls_in_order_with_their_context(
    app: FastAPI, http: httpx.AsyncClient, phone: Callable[..., Phone]
) -> None:
    first, second = phone(caller="+31611111111"), phone(caller="+31622222222")
    await first.dial()
    await first.press("1")
    await first.press("3")
    await first.press("#")
    await second.dial()
    await second.press("9")
    await second.press("5")
    await second.press("#")
    response = await http.get("/api/queue", headers=await signed_in(http, SANNE))
    assert response.status_code == 200
    waiting = response.json()
    assert [w["call_sid"] for w in waiting] == [first.call_sid, second.call_sid]
    # what the call waits for, never who calls: no number, application, path or note
    assert waiting[0] == {
        "call_sid": first.call_sid,
        "language": "nl",
        "product": "vog_np",
        "theme": "objection",
        "priority": 0,
        "verification": "skipped",
        "callback": False,
        "queued_at": "2026-12-01T09:00:00Z",
        "transferred": False,
    }
    assert waiting[1]["language"] == "en" and waiting[1]["product"] == "pardon"


@pytest.mark.usefixtures("staff")
async def test_call_that_hung_up_is_no_longer_listed(
    http: httpx.AsyncClient, phone: Callable[..., Phone]
) -> None:
    caller = phone()
    await caller.dial()
    await caller.press("2")
    await caller.press("#")
    await caller.hang_up()
    response = await http.get("/api/queue", headers=await signed_in(http, SANNE))
    assert response.json() == []
