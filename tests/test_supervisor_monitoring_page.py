"""The supervisor page's "Gesprekken" in a real browser: "Meeluisteren", "Fluisteren",
"Inbreken" and "Stoppen" drive the supervisor's participant in the conversation's conference at
the Twilio stub (muted, coaching the adviser, a full participant, removed).

A real `kcc serve` runs with a Twilio account that is the stub (KCC_TWILIO_API_BASE); the
caller's side runs on an event loop of its own thread (tests/support/desk_server.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support import staff
from tests.support.browser import Browser, Page, expect, open_page, open_signed_in
from tests.support.conference_calls import participant
from tests.support.desk_server import ADVISER_PHONE, PASSWORD, CallerLine, open_kcc_serve_with_stub
from tests.support.servers import KccServer
from tests.support.twilio_conferences import Conference, Participant
from tests.support.twilio_stub import TwilioStub

pytestmark = pytest.mark.slow  # a real `kcc serve` and a browser

SUPERVISOR_PAGE = "Supervisor - Justis klantcontactcentrum"


@pytest.fixture(scope="module")
def stub() -> Iterator[TwilioStub]:
    with TwilioStub() as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, stub: TwilioStub) -> Iterator[KccServer]:
    with open_kcc_serve_with_stub(tmp_path_factory.mktemp("supervisor-monitoring"), stub) as served:
        yield served


@pytest.fixture
def page(browser: Browser, server: KccServer) -> Iterator[Page]:
    with open_page(browser, server.url, width=1280, height=900) as opened:
        yield opened


def supervisor_leg(conference: Conference) -> Participant | None:
    found = [
        p for p in conference.participants.values() if (p.label or "").startswith("supervisor:")
    ]
    return found[0] if found else None


def test_the_monitor_buttons_drive_the_supervisors_participant(
    page: Page, server: KccServer, stub: TwilioStub
) -> None:
    suffix = uuid.uuid4().hex[:8]
    adviser = staff.adviser(f"adviser{suffix}", PASSWORD, device=ADVISER_PHONE)
    boss = staff.supervisor(f"super{suffix}", PASSWORD)
    staff.add_staff_at(server.database_url, adviser, boss)
    stub.script_device(ADVISER_PHONE, "answers")
    stub.script_device(f"client:{boss.name}", "answers")
    adviser_headers = staff.signed_in_to(server.url, adviser)
    available = httpx.post(
        f"{server.url}/api/advisers/me/status",
        json={"status": "available"},
        headers=adviser_headers,
    )
    assert available.status_code == 200, available.text
    open_signed_in(page, "/supervisor#gesprekken", SUPERVISOR_PAGE, boss)
    expect(page.get_by_role("heading", name="Gesprekken")).to_be_visible()

    line = CallerLine(server, stub)
    try:
        call = line.queue_and_connect()  # the caller joins, the adviser's phone answers
        conference = call.conference()
        adviser_leg = participant(conference, "adviser")
        row = page.locator(f'tr[data-call="{call.call_sid}"]')
        expect(row).to_contain_text(adviser.name)
        expect(row).to_contain_text("VOG rechtspersoon")
        mine = row.get_by_test_id("my-monitor")

        row.get_by_role("button", name="Meeluisteren").click()
        expect(mine).to_have_text("Je telefoon gaat over…")
        leg = supervisor_leg(conference)
        assert leg is not None and leg.to == f"client:{boss.name}"
        assert leg.muted and not leg.coaching
        line.deliver()  # the supervisor's phone answered
        expect(mine).to_have_text("Je luistert mee.")
        expect(row.get_by_role("button", name="Meeluisteren")).to_have_attribute(
            "aria-pressed", "true"
        )

        row.get_by_role("button", name="Fluisteren").click()
        expect(mine).to_have_text("Je fluistert.")
        assert leg.coaching and leg.call_sid_to_coach == adviser_leg.call_sid and not leg.muted

        row.get_by_role("button", name="Inbreken").click()
        expect(mine).to_have_text("Je bent ingebroken.")
        assert not leg.coaching and not leg.muted

        row.get_by_role("button", name="Stoppen").click()
        expect(mine).to_have_text("Je bent gestopt.")
        assert supervisor_leg(conference) is None and leg.call_sid in conference.left
        expect(row.get_by_role("button", name="Stoppen")).to_be_disabled()

        # The call ends: its row goes; a late "Stoppen" elsewhere would say so in Dutch.
        line.run(call.hang_up())
        expect(row).to_have_count(0)
        expect(page.get_by_test_id("error")).to_be_hidden()
    finally:
        line.close()
        httpx.post(
            f"{server.url}/api/advisers/me/status",
            json={"status": "offline"},
            headers=adviser_headers,
        )


def test_a_refused_monitor_request_is_said_in_dutch(
    page: Page, server: KccServer, stub: TwilioStub
) -> None:
    suffix = uuid.uuid4().hex[:8]
    adviser = staff.adviser(f"adviser{suffix}", PASSWORD, device=ADVISER_PHONE)
    boss = staff.supervisor(f"super{suffix}", PASSWORD)
    staff.add_staff_at(server.database_url, adviser, boss)
    stub.script_device(ADVISER_PHONE, "answers")
    adviser_headers = staff.signed_in_to(server.url, adviser)
    httpx.post(
        f"{server.url}/api/advisers/me/status",
        json={"status": "available"},
        headers=adviser_headers,
    )
    open_signed_in(page, "/supervisor#gesprekken", SUPERVISOR_PAGE, boss)
    line = CallerLine(server, stub)
    try:
        call = line.queue_and_connect()
        row = page.locator(f'tr[data-call="{call.call_sid}"]')
        expect(row).to_be_visible()
        stub.fail_next(status=400, code=21210, message="invalid caller id")

        row.get_by_role("button", name="Inbreken").click()

        expect(page.get_by_test_id("error")).to_have_text(
            "Je telefoon kon niet in het gesprek worden gezet. Probeer het opnieuw."
        )
        expect(row.get_by_test_id("my-monitor")).to_have_text("Je telefoon kon niet gebeld worden.")
    finally:
        line.close()
        httpx.post(
            f"{server.url}/api/advisers/me/status",
            json={"status": "offline"},
            headers=adviser_headers,
        )
