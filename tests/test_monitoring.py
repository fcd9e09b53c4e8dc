"""Supervisors listen, whisper and barge in, end to end: the caller's webhooks from the software
phone, the conference and the supervisor's device played by the Twilio stub through the real
twilio SDK (every callback signed and delivered), the audit log in SQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.cli.phone import Phone
from routing.clock import FixedClock
from tests.support.conference_calls import ANN, ConferenceCall, in_conversation
from tests.support.database import sqlite_url
from tests.support.servers import invoke_kcc
from tests.support.staff import SANNE, add_staff, signed_in, supervisor
from tests.support.twilio_conferences import Participant
from tests.support.twilio_stub import TwilioStub

SANNE_PHONE = "client:sanne"  # a supervisor's default device: their browser phone
PIM = supervisor("pim")


@pytest.fixture
def staff(app: FastAPI) -> None:
    add_staff(app.state.services.db_engine, SANNE, PIM, ANN)


def supervisor_leg(call: ConferenceCall) -> Participant | None:
    found = [
        p
        for p in call.conference().participants.values()
        if (p.label or "").startswith("supervisor:")
    ]
    return found[0] if found else None


def adviser_leg(call: ConferenceCall) -> Participant:
    [found] = [p for p in call.conference().participants.values() if p.label == "adviser"]
    return found


async def monitor(
    http: httpx.AsyncClient, call: ConferenceCall, who: dict[str, str], mode: str
) -> httpx.Response:
    return await http.post(f"/api/calls/{call.call_sid}/monitor", json={"mode": mode}, headers=who)


async def audit(http: httpx.AsyncClient, who: dict[str, str]) -> list[dict[str, object]]:
    response = await http.get("/api/monitor-sessions", headers=who)
    assert response.status_code == 200, response.text
    rows: list[dict[str, object]] = response.json()
    return rows


@pytest.mark.usefixtures("staff")
async def test_listen_whisper_barge_and_leave_drive_the_supervisors_participant(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    clock: FixedClock,
) -> None:
    call, _ = await in_conversation(http, phone, twilio_stub)
    sanne = await signed_in(http, SANNE)
    twilio_stub.script_device(SANNE_PHONE, "answers")

    listening = await monitor(http, call, sanne, "listen")

    assert listening.status_code == 200, listening.text
    assert listening.json()["mode"] == "listen"
    leg = supervisor_leg(call)
    assert leg is not None and leg.to == SANNE_PHONE
    assert leg.muted and not leg.coaching  # heard by nobody
    await call.deliver()
    [row] = (await http.get("/api/calls", headers=sanne)).json()
    assert row["adviser"] == "ann" and row["product"] == "vog_rp"
    assert row["monitors"] == [
        {
            "supervisor": "sanne",
            "mode": "listen",
            "state": "active",
            "reason": None,
            "since": row["monitors"][0]["since"],
        }
    ]
    assert not ({"caller", "application_number", "path"} & set(row))  # no personal context

    clock.set(clock.now() + timedelta(seconds=30))
    whispering = await monitor(http, call, sanne, "whisper")

    assert whispering.json()["mode"] == "whisper"
    assert leg.coaching and leg.call_sid_to_coach == adviser_leg(call).call_sid  # only Ann
    assert not leg.muted
    clock.set(clock.now() + timedelta(seconds=15))
    barging = await monitor(http, call, sanne, "barge")

    assert barging.json()["mode"] == "barge"
    assert not leg.muted and not leg.coaching  # everyone hears Sanne now
    assert supervisor_leg(call) is leg  # the same participant, changed: one session per call
    clock.set(clock.now() + timedelta(seconds=5))

    left = await http.delete(f"/api/calls/{call.call_sid}/monitor", headers=sanne)

    assert left.status_code == 200 and left.json()["state"] == "ended"
    assert supervisor_leg(call) is None and leg.call_sid in call.conference().left
    await call.deliver()
    labels = sorted(p.label or "" for p in call.conference().participants.values())
    assert labels == ["adviser", "caller"]  # the conversation goes on
    [session] = await audit(http, sanne)
    assert session["supervisor"] == "sanne" and session["call_sid"] == call.call_sid
    assert [m["mode"] for m in session["modes"]] == ["listen", "whisper", "barge"]  # type: ignore[attr-defined,index]
    assert (session["state"], session["reason"], session["seconds"]) == ("ended", "left", 50)
    again = await http.delete(f"/api/calls/{call.call_sid}/monitor", headers=sanne)
    assert (again.status_code, again.json()["code"]) == (404, "not_monitoring")


@pytest.mark.usefixtures("staff")
async def test_a_second_request_in_the_same_mode_changes_nothing_and_two_supervisors_each_have_one(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call, _ = await in_conversation(http, phone, twilio_stub)
    sanne, pim = await signed_in(http, SANNE), await signed_in(http, PIM)
    twilio_stub.script_device(SANNE_PHONE, "answers")
    twilio_stub.script_device("client:pim", "answers")

    await monitor(http, call, sanne, "listen")
    await monitor(http, call, sanne, "listen")
    await monitor(http, call, pim, "barge")
    await call.deliver()

    legs = [
        p
        for p in call.conference().participants.values()
        if (p.label or "").startswith("supervisor:")
    ]
    assert sorted(p.to for p in legs) == ["client:pim", SANNE_PHONE]
    [row] = (await http.get("/api/calls", headers=pim)).json()
    assert sorted((m["supervisor"], m["mode"]) for m in row["monitors"]) == [
        ("pim", "barge"),
        ("sanne", "listen"),
    ]
    assert row["mine"]["mode"] == "barge"


@pytest.mark.usefixtures("staff")
async def test_the_call_ending_while_monitored_ends_the_session_and_records_how_long(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    clock: FixedClock,
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    sanne = await signed_in(http, SANNE)
    twilio_stub.script_device(SANNE_PHONE, "answers")
    await monitor(http, call, sanne, "whisper")
    await call.deliver()
    leg = supervisor_leg(call)
    assert leg is not None
    clock.set(clock.now() + timedelta(seconds=42))

    await call.hang_up()

    assert call.conference().status == "completed"
    assert leg.call_sid in call.conference().left
    assert (await http.get("/api/calls", headers=sanne)).json() == []
    mine = await http.get(f"/api/calls/{call.call_sid}/monitor", headers=sanne)
    assert (mine.json()["state"], mine.json()["reason"]) == ("ended", "call_ended")
    [session] = await audit(http, sanne)
    assert (session["state"], session["reason"], session["seconds"]) == ("ended", "call_ended", 42)
    assert session["ended_at"] is not None
    # Monitoring a call that is over: 404 with a code, nothing called.
    creates = len(twilio_stub.requests)
    late = await monitor(http, call, sanne, "listen")
    assert (late.status_code, late.json()["code"]) == (404, "call_unknown")
    assert len(twilio_stub.requests) == creates
    assert (await http.get("/api/advisers/me", headers=ann)).json()["status"] == "wrap_up"


@pytest.mark.usefixtures("staff")
async def test_a_supervisors_phone_that_does_not_answer_is_a_coded_failure_and_can_be_retried(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call, _ = await in_conversation(http, phone, twilio_stub)
    sanne = await signed_in(http, SANNE)
    twilio_stub.script_device(SANNE_PHONE, "no-answer")

    asked = await monitor(http, call, sanne, "listen")
    assert asked.status_code == 200 and asked.json()["state"] == "ringing"
    await call.deliver()

    mine = (await http.get(f"/api/calls/{call.call_sid}/monitor", headers=sanne)).json()
    assert (mine["state"], mine["reason"]) == ("failed", "no-answer")
    [row] = (await http.get("/api/calls", headers=sanne)).json()
    assert row["monitors"] == [] and row["mine"]["reason"] == "no-answer"
    assert supervisor_leg(call) is None  # nothing stuck in the conference

    twilio_stub.script_device(SANNE_PHONE, "answers")
    retried = await monitor(http, call, sanne, "listen")
    await call.deliver()
    assert retried.status_code == 200
    assert (await http.get(f"/api/calls/{call.call_sid}/monitor", headers=sanne)).json()[
        "state"
    ] == "active"
    sessions = await audit(http, sanne)
    assert [(s["state"], s["reason"], s["seconds"]) for s in sessions] == [
        ("failed", "no-answer", None),
        ("active", None, None),
    ]


@pytest.mark.usefixtures("staff")
async def test_twilio_refusing_the_supervisors_leg_is_502_and_leaves_no_session(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call, _ = await in_conversation(http, phone, twilio_stub)
    sanne = await signed_in(http, SANNE)
    twilio_stub.fail_next(status=400, code=21210, message="invalid caller id")

    refused = await monitor(http, call, sanne, "barge")

    assert (refused.status_code, refused.json()["code"]) == (502, "monitor_failed")
    [row] = (await http.get("/api/calls", headers=sanne)).json()
    assert row["monitors"] == [] and row["mine"]["state"] == "failed"


@pytest.mark.usefixtures("staff")
async def test_the_call_ending_while_the_supervisor_is_called_in_is_409(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call, _ = await in_conversation(http, phone, twilio_stub)
    sanne = await signed_in(http, SANNE)
    twilio_stub.script_device(SANNE_PHONE, "answers")
    twilio_stub.fail_next(delay=0.5)  # Twilio is slow to add the supervisor

    async def caller_hangs_up_meanwhile() -> None:
        await asyncio.sleep(0.15)
        await call.hang_up()

    asked, _ = await asyncio.gather(
        monitor(http, call, sanne, "listen"), caller_hangs_up_meanwhile()
    )

    assert (asked.status_code, asked.json()["code"]) == (409, "call_ended")
    await call.deliver()
    assert supervisor_leg(call) is None
    [session] = await audit(http, sanne)
    assert session["state"] in ("ended", "failed") and session["ended_at"] is not None


@pytest.mark.usefixtures("staff")
async def test_only_supervisors_monitor_and_bad_requests_get_codes(
    http: httpx.AsyncClient, phone: Callable[..., Phone], twilio_stub: TwilioStub
) -> None:
    call, ann = await in_conversation(http, phone, twilio_stub)
    sanne = await signed_in(http, SANNE)

    listed = await http.get("/api/calls", headers=ann)
    tried = await monitor(http, call, ann, "listen")
    log = await http.get("/api/monitor-sessions", headers=ann)

    for refused in (listed, tried, log):
        assert (refused.status_code, refused.json()["code"]) == (403, "role_required")
    assert supervisor_leg(call) is None
    unknown = await http.post(
        f"/api/calls/CA{'0' * 32}/monitor", json={"mode": "listen"}, headers=sanne
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "call_unknown")
    bad_mode = await monitor(http, call, sanne, "spy")
    assert (bad_mode.status_code, bad_mode.json()["code"]) == (422, "request_invalid")
    bad_range = await http.get(
        "/api/monitor-sessions",
        params={"from": "2026-12-02T00:00:00", "to": "2026-12-01T00:00:00"},
        headers=sanne,
    )
    assert (bad_range.status_code, bad_range.json()["code"]) == (422, "range_invalid")
    assert (await http.get("/api/calls")).status_code == 401


@pytest.mark.usefixtures("staff")
async def test_the_audit_log_is_filtered_by_when_sessions_started(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    clock: FixedClock,
) -> None:
    call, _ = await in_conversation(http, phone, twilio_stub)
    sanne = await signed_in(http, SANNE)
    twilio_stub.script_device(SANNE_PHONE, "answers")
    started = clock.now()
    await monitor(http, call, sanne, "listen")
    await call.deliver()

    def window(start: timedelta, end: timedelta) -> dict[str, str]:
        return {"from": (started + start).isoformat(), "to": (started + end).isoformat()}

    inside = await http.get(
        "/api/monitor-sessions",
        params=window(-timedelta(minutes=1), timedelta(minutes=1)),
        headers=sanne,
    )
    after = await http.get(
        "/api/monitor-sessions",
        params=window(timedelta(minutes=1), timedelta(hours=1)),
        headers=sanne,
    )
    assert [s["call_sid"] for s in inside.json()] == [call.call_sid]
    assert after.json() == []
    assert json.dumps(inside.json()).count(call.call_sid) == 1


@pytest.mark.usefixtures("staff")
async def test_kcc_audit_monitor_lists_the_sessions_with_modes_and_seconds(
    http: httpx.AsyncClient,
    phone: Callable[..., Phone],
    twilio_stub: TwilioStub,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    call, _ = await in_conversation(http, phone, twilio_stub)
    sanne = await signed_in(http, SANNE)
    twilio_stub.script_device(SANNE_PHONE, "answers")
    await monitor(http, call, sanne, "listen")
    await call.deliver()
    await monitor(http, call, sanne, "barge")
    clock.set(clock.now() + timedelta(seconds=75))
    await http.delete(f"/api/calls/{call.call_sid}/monitor", headers=sanne)
    env = {"KCC_DATABASE_URL": sqlite_url(tmp_path)}

    listed = invoke_kcc("audit", "monitor", "--from", "2026-12-01", "--to", "2026-12-02", env=env)
    none = invoke_kcc("audit", "monitor", "--from", "2026-12-02", env=env)
    backwards = invoke_kcc(
        "audit", "monitor", "--from", "2026-12-02", "--to", "2026-12-01", env=env
    )

    assert listed.exit_code == 0, listed.output
    header, row, total = listed.output.splitlines()
    assert header.split("\t")[:3] == ["started (UTC)", "supervisor", "call"]
    assert row.split("\t")[1:] == [
        "sanne",
        call.call_sid,
        "ann",
        "listen>barge",
        "2026-12-01 09:01:15",
        "left",
        "75",
    ]
    assert total == "1 monitor session(s)"
    assert none.output.splitlines()[-1] == "0 monitor session(s)"
    assert backwards.exit_code == 2 and "--to must be after --from" in backwards.output
