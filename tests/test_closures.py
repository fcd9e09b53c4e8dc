"""Closing the contact centre for a day or part of one, and the outage message (Sluitingen on
/supervisor): each is a new flow version published through the same checks and audit as a YAML
edit, heard by the next caller, and undone the same way."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, time

import httpx
import pytest
from fastapi import FastAPI

from api.cli.phone import Phone
from api.settings import DEFAULT_FLOW
from flows.closures import ClosedPart, ClosureError, hours_left_open
from flows.loader import load_flow
from flows.model import OpeningRange
from tests.support.staff import AHMED, SANNE, add_staff, signed_in

TODAY = "2026-12-01"  # the test clock's Tuesday, 10:00 in Amsterdam
FLOW = load_flow(DEFAULT_FLOW)
MAIN_MENU = FLOW.prompts["main_menu"]["nl"].split(".")[0]
CLOSED = "Het klantcontactcentrum is vandaag gesloten."


@pytest.fixture
async def headers(app: FastAPI, http: httpx.AsyncClient) -> dict[str, str]:
    add_staff(app.state.services.db_engine, SANNE, AHMED)
    return await signed_in(http, SANNE)


async def audit(http: httpx.AsyncClient, headers: dict[str, str]) -> list[tuple[str, int, str]]:
    entries = (await http.get("/api/flows/audit", headers=headers)).json()
    return [(e["actor"], e["to_version"], e["comment"]) for e in entries]


async def test_closing_today_is_a_published_version_the_next_caller_hears_and_undo_reopens(
    http: httpx.AsyncClient, headers: dict[str, str], phone: Callable[..., Phone]
) -> None:
    assert MAIN_MENU in (await phone().dial()).text

    closed = await http.post("/api/flows/closures", json={"date": TODAY}, headers=headers)

    assert closed.status_code == 201, closed.text
    assert closed.json()["number"] == 2 and closed.json()["live"] is True
    heard = (await phone().dial()).text
    assert CLOSED in heard and MAIN_MENU not in heard
    listed = (await http.get("/api/flows/closures", headers=headers)).json()
    assert listed["closures"][0] == {
        "date": TODAY,
        "until": None,
        "hours": None,
        "announcement": {"nl": CLOSED, "en": "The contact centre is closed today."},
    }
    assert [c["date"] for c in listed["closures"]] == [TODAY, "2026-12-24", "2026-12-31"]
    assert (await audit(http, headers))[0] == ("sanne", 2, f"Gesloten op {TODAY} (hele dag)")
    # The version is an ordinary one: its text has the closure and nothing else changed.
    text = (await http.get("/api/flows/versions/2", headers=headers)).json()["text"]
    diff = (await http.get("/api/flows/diff?a=1", headers=headers)).json()["diff"]
    assert f"- {{date: {TODAY}, announcement:" in text
    changed = [line for line in diff.splitlines() if line[:1] in "+-"][2:]  # past the names
    english = "The contact centre is closed today."
    assert changed == [
        f'+    - {{date: {TODAY}, announcement: {{nl: "{CLOSED}", en: "{english}"}}}}'
    ]

    undone = await http.delete(f"/api/flows/closures/{TODAY}", headers=headers)

    assert undone.status_code == 200 and undone.json()["number"] == 3
    heard = (await phone().dial()).text
    assert MAIN_MENU in heard and CLOSED not in heard
    assert (await audit(http, headers))[0][1:] == (3, f"Sluiting van {TODAY} ongedaan gemaakt")
    again = await http.delete(f"/api/flows/closures/{TODAY}", headers=headers)
    assert (again.status_code, again.json()["code"]) == (409, "no_closure")


async def test_closing_the_afternoon_keeps_the_morning_open_with_its_own_announcement(
    http: httpx.AsyncClient, headers: dict[str, str], phone: Callable[..., Phone]
) -> None:
    body = {
        "date": TODAY,
        "closed_from": "12:00",
        "closed_until": "17:00",
        "announcement": {"nl": "Vanmiddag zijn wij gesloten voor een training."},
    }

    closed = await http.post("/api/flows/closures", json=body, headers=headers)

    assert closed.status_code == 201, closed.text
    heard = (await phone().dial()).text  # 10:00: still open
    assert "Vanmiddag zijn wij gesloten voor een training." in heard and MAIN_MENU in heard
    [today, *_] = (await http.get("/api/flows/closures", headers=headers)).json()["closures"]
    assert today["hours"] == "09:00-12:00"
    # The English callers get the default text, which says the hours left.
    assert (
        today["announcement"]["en"] == "Today the contact centre is open from {opens} to {closes}."
    )
    calendar = (await http.get("/api/flows/calendar?days=1", headers=headers)).json()
    assert calendar[0]["hours"] == "09:00-12:00"


def part(start: str, end: str) -> dict[str, str]:
    return {"date": TODAY, "closed_from": start, "closed_until": end}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"date": "2026-12-05"}, 409, "already_closed"),  # a Saturday
        ({"date": "2026-12-24"}, 409, "day_has_exception"),
        (part("12:00", "13:00"), 422, "closure_splits_day"),
        (part("13:00", "12:00"), 422, "range_invalid"),
        (part("18:00", "19:00"), 422, "closure_outside_hours"),
        ({"date": TODAY, "closed_from": "12:00"}, 422, "range_incomplete"),
        ({"date": TODAY, "announcement": {"de": "Geschlossen"}}, 422, "language_unknown"),
    ],
)  # fmt: skip
async def test_a_closure_that_cannot_be_made_is_refused_and_nothing_is_published(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    body: dict[str, object],
    status: int,
    code: str,
) -> None:
    refused = await http.post("/api/flows/closures", json=body, headers=headers)

    assert (refused.status_code, refused.json()["code"]) == (status, code), refused.text
    assert (await http.get("/api/flows", headers=headers)).json()["live"] == 1


async def test_the_outage_message_is_said_before_the_menu_until_switched_off(
    http: httpx.AsyncClient, headers: dict[str, str], phone: Callable[..., Phone]
) -> None:
    welcome = FLOW.prompts["welcome"]["nl"]
    on = await http.put(
        "/api/flows/outage",
        json={"active": True, "prompt": {"nl": "Wij hebben een storing in de telefonie."}},
        headers=headers,
    )

    assert on.status_code == 200, on.text
    heard = (await phone().dial()).text
    assert heard.startswith("Wij hebben een storing in de telefonie.")
    assert heard.index("storing") < heard.index(welcome) < heard.index(MAIN_MENU)
    state = (await http.get("/api/flows/closures", headers=headers)).json()["outage"]
    assert state["active"] is True
    assert state["prompt"]["nl"] == "Wij hebben een storing in de telefonie."
    same = await http.put("/api/flows/outage", json={"active": True}, headers=headers)
    assert (same.status_code, same.json()["code"]) == (409, "outage_unchanged")

    off = await http.put("/api/flows/outage", json={"active": False}, headers=headers)

    assert off.status_code == 200 and off.json()["number"] == 3
    assert "storing" not in (await phone().dial()).text
    assert [entry[2] for entry in (await audit(http, headers))[:2]] == [
        "Storingsmelding uit",
        "Storingsmelding aan",
    ]
    # Rolling back to version 2 puts it on again, as for any version.
    back = await http.post("/api/flows/rollback", json={"version": 2}, headers=headers)
    assert back.status_code == 200
    assert "storing in de telefonie" in (await phone().dial()).text


async def test_advisers_cannot_close_the_centre(http: httpx.AsyncClient, app: FastAPI) -> None:
    add_staff(app.state.services.db_engine, AHMED)
    headers = await signed_in(http, AHMED)
    closed = await http.post("/api/flows/closures", json={"date": TODAY}, headers=headers)
    outage = await http.put("/api/flows/outage", json={"active": True}, headers=headers)
    assert closed.status_code == outage.status_code == 403


def test_the_hours_left_open_by_a_partial_closure() -> None:
    day = OpeningRange(opens=time(9), closes=time(17))

    def left(start: int, end: int) -> OpeningRange | None:
        return hours_left_open(day, ClosedPart(time(start), time(end)))

    assert hours_left_open(day, None) is None
    assert left(8, 18) is None
    assert left(9, 11) == OpeningRange(opens=time(11), closes=time(17))
    assert left(15, 20) == OpeningRange(opens=time(9), closes=time(15))
    with pytest.raises(ClosureError) as middle:
        left(11, 12)
    assert middle.value.code == "closure_splits_day"
    assert date(2026, 12, 1).isoformat() == TODAY
