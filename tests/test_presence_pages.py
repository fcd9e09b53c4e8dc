"""Presence in a real browser: an adviser who closes the desk is AWAY on the supervisor page.

A real `kcc serve` (the simulated telephony of the demo, the real Redis when it is up, a grace
period of 2 seconds set here); the adviser's desk and the supervisor page in headless Chromium.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import REDIS_UP, REDIS_URL, SECRET_KEY
from tests.support.browser import Browser, expect, open_page, open_signed_in
from tests.support.servers import KccServer, open_kcc_serve
from tests.support.staff import adviser, supervisor

pytestmark = pytest.mark.slow  # a real `kcc serve` and a browser

PRESENCE_REDIS_URL = os.environ.get("KCC_TEST_PRESENCE_REDIS_URL", REDIS_URL)
PASSWORD = "correct horse battery staple"
SUPERVISOR = supervisor("s.jansen", PASSWORD)
ADVISER = adviser("a.bakker", PASSWORD)
GRACE_SECONDS = 2
DESK_TITLE = "Adviseursdesk - Justis klantcontactcentrum"
SUPERVISOR_TITLE = "Supervisor - Justis klantcontactcentrum"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KccServer]:
    with open_kcc_serve(
        tmp_path_factory.mktemp("presence"),
        secret_key=SECRET_KEY,
        staff=[SUPERVISOR, ADVISER],
        redis_url=PRESENCE_REDIS_URL if REDIS_UP else None,
        KCC_PRESENCE_GRACE_SECONDS=str(GRACE_SECONDS),
    ) as served:
        yield served


def test_closing_the_desk_makes_the_adviser_away_on_the_supervisor_page(
    browser: Browser, server: KccServer
) -> None:
    with open_page(browser, server.url, width=1280, height=900) as watching:
        open_signed_in(watching, "/supervisor#gesprekken", SUPERVISOR_TITLE, SUPERVISOR)
        row = watching.locator(f'tr[data-adviser="{ADVISER.name}"]')
        with open_page(browser, server.url, width=1280, height=800) as desk:
            open_signed_in(desk, "/desk", DESK_TITLE, ADVISER)
            expect(desk.get_by_test_id("state")).to_have_text("Afgemeld")
            desk.get_by_role("button", name="Beschikbaar", exact=True).click()
            expect(desk.get_by_test_id("state")).to_have_text("Beschikbaar")
            expect(row.locator(".status")).to_have_text("Beschikbaar")
        # The tab is closed: after the grace period (and a tick) the adviser is away.
        expect(row.locator(".status")).to_have_text("Afwezig")
        expect(row).to_have_attribute("data-status", "away")
        with open_page(browser, server.url, width=1280, height=800) as desk:
            open_signed_in(desk, "/desk", DESK_TITLE, ADVISER)
            # Back at the desk: available again, as they had chosen.
            expect(desk.get_by_test_id("state")).to_have_text("Beschikbaar")
            expect(row.locator(".status")).to_have_text("Beschikbaar")
