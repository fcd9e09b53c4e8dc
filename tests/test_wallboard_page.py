"""The wallboard in a real browser: the room's screen (a viewer) signs in, sees the figures, and a
caller arriving through the webhooks shows on it within 2 seconds; it survives a reload; the
supervisor page's "Nu" shows the same with the advisers' names.

A real `kcc serve` runs with a Twilio account that is the stub; the caller's side runs on an
event loop of its own thread (tests/support/desk_server.py). Outside requests are blocked."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from api.accounts import Role
from api.cli.phone import Phone
from tests.support import staff
from tests.support.browser import Browser, Page, expect, open_page, open_signed_in
from tests.support.desk_server import PASSWORD, CallerLine, open_kcc_serve_with_stub
from tests.support.servers import KccServer
from tests.support.twilio_stub import TwilioStub

pytestmark = pytest.mark.slow  # a real `kcc serve` and a browser

WALLBOARD_PAGE = "Wallboard - Justis klantcontactcentrum"
SUPERVISOR_PAGE = "Supervisor - Justis klantcontactcentrum"


@pytest.fixture(scope="module")
def stub() -> Iterator[TwilioStub]:
    with TwilioStub() as running:
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, stub: TwilioStub) -> Iterator[KccServer]:
    with open_kcc_serve_with_stub(tmp_path_factory.mktemp("wallboard"), stub) as served:
        yield served


@pytest.fixture
def page(browser: Browser, server: KccServer) -> Iterator[Page]:
    with open_page(browser, server.url, width=1920, height=1080) as opened:
        yield opened


def viewer() -> staff.Account:
    return staff.Account(f"screen{uuid.uuid4().hex[:8]}", Role.VIEWER, PASSWORD)


class WaitingCaller:
    """A caller in the vog_rp line (no adviser takes it), until `hang_up`."""

    def __init__(self, server: KccServer, stub: TwilioStub) -> None:
        self._line = CallerLine(server, stub)
        self._server = server
        self._stub = stub
        self._client: httpx.AsyncClient | None = None
        self._phone: Phone | None = None
        self._line.run(self._queue())

    async def _queue(self) -> None:
        self._client = httpx.AsyncClient(base_url=self._server.url, timeout=10)
        self._phone = Phone(
            self._client, public_url=self._server.url, auth_token=self._stub.auth_token
        )
        await self._phone.dial()
        await self._phone.press("2")
        assert (await self._phone.press("#")).queue == "kcc-vog_rp"

    async def _hang_up(self) -> None:
        if self._phone is not None:
            await self._phone.hang_up()
        if self._client is not None:
            await self._client.aclose()

    def hang_up(self) -> None:
        try:
            self._line.run(self._hang_up())
        finally:
            self._line.close()


def test_the_room_screen_shows_a_new_caller_within_2_seconds_and_survives_a_reload(
    page: Page, server: KccServer, stub: TwilioStub
) -> None:
    screen = viewer()
    staff.add_staff_at(server.database_url, screen)
    open_signed_in(page, "/wallboard", WALLBOARD_PAGE, screen)
    waiting = page.get_by_test_id("wb-waiting")
    expect(waiting).to_have_text("0")
    expect(page.get_by_test_id("connection")).to_have_text("Live")
    expect(page.get_by_role("heading", name="Vandaag")).to_be_visible()
    expect(page.locator('tr[data-product="vog_rp"] th')).to_have_text("VOG rechtspersoon")
    # one screen, nothing to scroll
    assert page.evaluate("document.documentElement.scrollHeight <= window.innerHeight")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    caller = WaitingCaller(server, stub)
    try:
        expect(waiting).to_have_text("1", timeout=2000)
        expect(
            page.locator('tr[data-product="vog_rp"] [data-testid="wb-product-waiting"]')
        ).to_have_text("1")
        offered = page.get_by_test_id("wb-offered")
        expect(offered).not_to_have_text("0")
        expect(page.get_by_test_id("wb-adviser-list")).to_have_count(0)  # no names for the room

        page.reload()  # the screen is still signed in
        expect(page.get_by_test_id("login")).to_be_hidden()
        expect(waiting).to_have_text("1")
    finally:
        caller.hang_up()
    expect(waiting).to_have_text("0", timeout=3000)


def test_a_viewer_signing_in_on_the_supervisor_page_lands_on_the_wallboard(
    page: Page, server: KccServer
) -> None:
    screen = viewer()
    staff.add_staff_at(server.database_url, screen)
    open_signed_in(page, "/supervisor", SUPERVISOR_PAGE, screen)
    expect(page).to_have_title(WALLBOARD_PAGE)
    expect(page.get_by_test_id("wb-waiting")).to_be_visible()


def test_the_supervisors_nu_shows_the_advisers_by_name(page: Page, server: KccServer) -> None:
    suffix = uuid.uuid4().hex[:8]
    adviser = staff.adviser(f"adviser{suffix}", PASSWORD, skills=["vog_np"])
    boss = staff.supervisor(f"super{suffix}", PASSWORD)
    staff.add_staff_at(server.database_url, adviser, boss)
    headers = staff.signed_in_to(server.url, adviser)
    httpx.get(f"{server.url}/api/advisers/me", headers=headers).raise_for_status()  # known: offline
    open_signed_in(page, "/supervisor", SUPERVISOR_PAGE, boss)
    now = page.get_by_test_id("now")
    expect(now.get_by_role("heading", name="Nu")).to_be_visible()
    expect(page.get_by_test_id("now-status")).to_have_text("Live")
    row = now.locator(f'tr[data-person="{adviser.name}"]')
    expect(row).to_contain_text("Afgemeld")

    httpx.post(
        f"{server.url}/api/advisers/me/status", json={"status": "available"}, headers=headers
    ).raise_for_status()
    expect(row).to_contain_text("Beschikbaar", timeout=2000)  # by the stream, no reload
