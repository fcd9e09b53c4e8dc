"""The desk's call controls in a real browser: "In wacht" / "Uit wacht" and "Microfoon uit/aan"
drive the conversation's conference at the Twilio stub.

A real `kcc serve` runs with a Twilio account that is the stub (KCC_TWILIO_API_BASE): routing's
redirect, the conference, the adviser's phone and every callback go through the real twilio SDK
and signed webhooks. The caller's side runs on an event loop of its own (Playwright's sync API
owns this thread's).
"""

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
from tests.support.twilio_stub import TwilioStub

pytestmark = pytest.mark.slow  # a real `kcc serve` and a browser


@pytest.fixture(scope="module")
def stub() -> Iterator[TwilioStub]:
    with TwilioStub() as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, stub: TwilioStub) -> Iterator[KccServer]:
    with open_kcc_serve_with_stub(tmp_path_factory.mktemp("desk-controls"), stub) as served:
        yield served


@pytest.fixture
def page(browser: Browser, server: KccServer) -> Iterator[Page]:
    with open_page(browser, server.url, width=1280, height=800) as opened:
        yield opened


def test_hold_and_mute_buttons_drive_the_conference(
    page: Page, server: KccServer, stub: TwilioStub
) -> None:
    adviser = staff.adviser(f"adviser{uuid.uuid4().hex[:8]}", PASSWORD, device=ADVISER_PHONE)
    staff.add_staff_at(server.database_url, adviser)
    stub.script_device(ADVISER_PHONE, "answers")
    open_signed_in(page, "/desk", "Adviseursdesk - Justis klantcontactcentrum", adviser)
    expect(page.get_by_test_id("connection")).to_have_attribute("data-connected", "true")
    expect(page.get_by_test_id("demo-phone")).to_be_hidden()  # a Twilio account: no demo phone
    page.get_by_role("button", name="Beschikbaar", exact=True).click()
    expect(page.get_by_test_id("state")).to_have_text("Beschikbaar")
    controls = page.get_by_test_id("call-controls")
    expect(controls).to_be_hidden()

    line = CallerLine(server, stub)
    try:
        call = line.queue_and_connect()  # the caller joins, the adviser's phone answers
        expect(page.get_by_test_id("state")).to_have_text("In gesprek")
        expect(controls).to_be_visible()
        conference = call.conference()
        caller, adviser_leg = participant(conference, "caller"), participant(conference, "adviser")
        assert adviser_leg.to == ADVISER_PHONE

        page.get_by_role("button", name="In wacht").click()
        expect(page.get_by_role("button", name="Uit wacht")).to_be_visible()
        expect(page.get_by_test_id("controls-state")).to_have_text("De beller staat in de wacht.")
        assert caller.hold and caller.hold_url is not None

        page.get_by_role("button", name="Uit wacht").click()
        expect(page.get_by_role("button", name="In wacht")).to_be_visible()
        assert not caller.hold

        page.get_by_role("button", name="Microfoon uit").click()
        expect(page.get_by_role("button", name="Microfoon aan")).to_have_attribute(
            "aria-pressed", "true"
        )
        assert adviser_leg.muted and not caller.muted
        page.get_by_role("button", name="Microfoon aan").click()
        expect(page.get_by_role("button", name="Microfoon uit")).to_be_visible()
        assert not adviser_leg.muted

        # Held again, then the caller hangs up: the adviser's call ends, wrap-up follows.
        page.get_by_role("button", name="In wacht").click()
        expect(page.get_by_role("button", name="Uit wacht")).to_be_visible()
        line.run(call.hang_up())
        expect(page.get_by_test_id("state")).to_have_text("Nawerk")
        expect(controls).to_be_hidden()
        assert conference.status == "completed"
        assert adviser_leg.call_sid in conference.left
    finally:
        line.close()
        headers = staff.signed_in_to(server.url, adviser)
        httpx.post(
            f"{server.url}/api/advisers/me/status", json={"status": "offline"}, headers=headers
        )


COLLEAGUE_PHONE = "+31201234568"
WWM_PHONE = "+31700000102"  # the department wwm of the flow, open on the tests' Tuesday


def test_transfer_buttons_consult_a_department_then_pass_the_call_to_a_colleague(
    page: Page, browser: Browser, server: KccServer, stub: TwilioStub
) -> None:
    suffix = uuid.uuid4().hex[:8]
    ann = staff.adviser(f"ann{suffix}", PASSWORD, device=ADVISER_PHONE)
    # Carol handles vog_np only, so the vog_rp caller comes to Ann; a transfer ignores skills.
    carol = staff.adviser(f"carol{suffix}", PASSWORD, skills=["vog_np"], device=COLLEAGUE_PHONE)
    staff.add_staff_at(server.database_url, ann, carol)
    for device in (ADVISER_PHONE, COLLEAGUE_PHONE, WWM_PHONE):
        stub.script_device(device, "answers")
    open_signed_in(page, "/desk", "Adviseursdesk - Justis klantcontactcentrum", ann)
    page.get_by_role("button", name="Beschikbaar", exact=True).click()
    expect(page.get_by_test_id("state")).to_have_text("Beschikbaar")

    line = CallerLine(server, stub)
    with open_page(browser, server.url, width=1280, height=800) as carol_page:
        try:
            open_signed_in(carol_page, "/desk", "Adviseursdesk - Justis klantcontactcentrum", carol)
            carol_page.get_by_role("button", name="Beschikbaar", exact=True).click()
            expect(carol_page.get_by_test_id("state")).to_have_text("Beschikbaar")
            call = line.queue_and_connect()
            expect(page.get_by_test_id("state")).to_have_text("In gesprek")
            caller = participant(call.conference(), "caller")

            # Eerst overleggen with the department: the caller hears music meanwhile.
            page.get_by_test_id("transfer-target").select_option("department:wwm")
            page.get_by_label("Eerst overleggen").check()
            page.get_by_label("Toelichting voor de ontvanger").fill("Vraagt naar zijn verlof")
            page.get_by_role("button", name="Doorverbinden", exact=True).click()
            expect(page.get_by_test_id("consult")).to_be_visible()
            line.deliver()  # the department's phone answers and hears the whisper
            expect(page.get_by_test_id("consult-state")).to_have_text(
                "In overleg met de ontvanger. De beller staat in de wacht."
            )
            department = participant(call.conference(), "transfer")
            assert department.to == WWM_PHONE and department.announced and caller.hold

            page.get_by_role("button", name="Terug naar beller").click()
            expect(page.get_by_test_id("consult")).to_be_hidden()
            assert not caller.hold and department.call_sid in call.conference().left

            # Direct doorverbinden to Carol, with a note her screen-pop shows.
            page.get_by_test_id("transfer-target").select_option(f"adviser:{carol.name}")
            page.get_by_label("Direct doorverbinden").check()
            page.get_by_label("Toelichting voor de ontvanger").fill("Bezwaar tegen weigering")
            page.get_by_role("button", name="Doorverbinden", exact=True).click()
            expect(page.get_by_test_id("state")).to_have_text("Nawerk")
            expect(carol_page.get_by_test_id("card-transferred-by")).to_have_text(
                f"Doorverbonden door {ann.name}"
            )
            expect(carol_page.get_by_test_id("card-transfer-note")).to_have_text(
                "Notitie: Bezwaar tegen weigering"
            )
            line.run(call.connect())  # the caller follows the redirect; Carol's phone answers
            expect(carol_page.get_by_test_id("state")).to_have_text("In gesprek")
            assert participant(call.conference(), "adviser").to == COLLEAGUE_PHONE
        finally:
            line.close()
            for account in (ann, carol):
                headers = staff.signed_in_to(server.url, account)
                httpx.post(
                    f"{server.url}/api/advisers/me/status",
                    json={"status": "offline"},
                    headers=headers,
                )
