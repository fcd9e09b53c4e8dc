"""Closing time and a failing database, as a caller lives through them: nobody already in line
is dropped at 17:00, and an outage in the identity check ends with an adviser, not silence."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date, datetime

import pytest
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError

from api.cli.phone import Phone, parse_twiml
from ivr.identity.applications import ApplicationInfo
from routing.clock import FixedClock
from tests.conftest import SECRET_KEY
from tests.support.applications import app_with_demo_applications
from tests.support.clock import AMSTERDAM

PhoneFactory = Callable[..., Phone]
NUMBER, BORN = "1234567", "03111985"  # a demo application and its date of birth
BORN_FORMS = ["03111985", "1985-11-03", "03-11-1985", "3-11-1985", "date(1985, 11, 3)"]
BEFORE_CLOSING = datetime(2026, 12, 1, 16, 58, tzinfo=AMSTERDAM)  # a Tuesday
AFTER_CLOSING = datetime(2026, 12, 1, 17, 5, tzinfo=AMSTERDAM)
WAIT_VERBS = {"Play", "Say", "Pause", "Hangup", "Redirect", "Leave", "Gather"}


@pytest.fixture
async def app(make_app: Callable[..., FastAPI]) -> FastAPI:
    return app_with_demo_applications(make_app, SECRET_KEY)


async def waiting_sids(app: FastAPI) -> list[str]:
    return [entry.call_sid for entry in await app.state.services.queue.waiting()]


async def test_a_call_queued_before_closing_time_is_still_held_after_it(
    phone: PhoneFactory, clock: FixedClock, app: FastAPI
) -> None:
    """Closing at 17:00 stops new calls from queueing; it must not drop the ones in line."""
    clock.set(BEFORE_CLOSING)
    caller = phone()
    await caller.dial()
    await caller.press("1")
    await caller.press("4")
    turn = await caller.press("#")  # no application number
    assert turn.queue == "kcc-vog_np"

    clock.set(AFTER_CLOSING)
    hold = await caller.hold(position=3)  # our own line says 1; the fallback would repeat 3
    verbs = [verb.tag for verb in ET.fromstring(hold.twiml)]
    assert set(verbs) <= WAIT_VERBS
    assert {"Play", "Pause"} & set(verbs), hold.twiml
    assert not hold.hung_up and "Leave" not in verbs
    assert "U bent nummer 1 in de wachtrij." in hold.text
    assert "bereikbaar van maandag" not in hold.text and "Excuses" not in hold.text
    assert await waiting_sids(app) == [caller.call_sid]

    late = phone(caller="+31687654321")
    turn = await late.dial()
    assert "van maandag tot en met vrijdag van 9.00 tot 17.00 uur bereikbaar" in turn.text
    assert turn.queue is None
    assert await waiting_sids(app) == [caller.call_sid]


async def test_database_down_during_the_identity_check_apologises_and_queues(
    phone: PhoneFactory,
    app: FastAPI,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An outage must end with an adviser, and its error log must not carry the date of birth."""

    def database_down(application_number: str, born: date) -> ApplicationInfo | None:
        raise OperationalError(
            "SELECT applications.* FROM applications WHERE applications.application_number = ?",
            (application_number,),
            ConnectionError("server closed the connection unexpectedly"),
        )

    directory = app.state.services.calls.verifier._directory
    monkeypatch.setattr(directory, "check", database_down)
    caplog.set_level(logging.DEBUG)
    caller = phone()
    await caller.dial()
    await caller.press("1")
    await caller.press("1")
    await caller.press(f"{NUMBER}#")
    url = caller.last.gather_url if caller.last else None
    assert url is not None
    response = await caller.post(url, {"Digits": BORN})

    assert response.status_code == 200
    turn = parse_twiml(response.text)
    assert turn.heard[0].text.startswith("Excuses, er ging iets mis.")
    assert turn.queue == "kcc-general"
    assert any(r.exc_info and r.exc_info[0] is OperationalError for r in caplog.records)
    for record in caplog.records:
        logged = " ".join(
            [
                record.getMessage(),
                repr(record.__dict__),
                caplog.handler.format(record),
            ]
        )
        leaks = [form for form in BORN_FORMS if form in logged]
        assert not leaks, f"{record.name}: {record.getMessage()!r} logs {leaks}"
