"""Signing out on a staff page revokes its token on the server (POST /api/logout), on every page
that has a sign-out button: a token copied before stops working, not only when it would expire.

A real `kcc serve` and a browser; outside requests are blocked."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from api.accounts import Role
from tests.support import staff
from tests.support.browser import Browser, Page, expect, open_page, open_signed_in
from tests.support.desk_server import PASSWORD, open_kcc_serve_with_stub
from tests.support.servers import KccServer
from tests.support.twilio_stub import TwilioStub

pytestmark = pytest.mark.slow  # a real `kcc serve` and a browser

PAGES = {  # path: (title, role, where the page keeps its token, what the token may read)
    "/desk": ("Adviseursdesk", Role.ADVISER, "sessionStorage", "kcc.desk.token", "/api/me"),
    "/supervisor": (
        "Supervisor",
        Role.SUPERVISOR,
        "sessionStorage",
        "kcc.supervisor.token",
        "/api/me",
    ),
    "/reports": (
        "Rapportages",
        Role.SUPERVISOR,
        "sessionStorage",
        "kcc.supervisor.token",
        "/api/me",
    ),
    "/wallboard": (
        "Wallboard",
        Role.VIEWER,
        "localStorage",
        "kcc.wallboard.token",
        "/api/wallboard",
    ),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KccServer]:
    with TwilioStub() as stub, open_kcc_serve_with_stub(tmp_path_factory.mktemp("out"), stub) as s:
        yield s


@pytest.fixture
def page(browser: Browser, server: KccServer) -> Iterator[Page]:
    with open_page(browser, server.url, width=1920, height=1080) as opened:
        yield opened


@pytest.mark.parametrize("path", list(PAGES))
def test_signing_out_revokes_the_pages_token(page: Page, server: KccServer, path: str) -> None:
    title, role, storage, key, readable = PAGES[path]
    account = staff.Account(f"out{uuid.uuid4().hex[:8]}", role, PASSWORD)
    staff.add_staff_at(server.database_url, account)
    open_signed_in(page, path, f"{title} - Justis klantcontactcentrum", account)
    sign_out = page.get_by_test_id("sign-out")
    expect(sign_out).to_be_visible()
    token = page.evaluate(f"window.{storage}.getItem({key!r})")
    assert token
    me = f"{server.url}{readable}"
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(me, headers=headers).status_code == 200

    sign_out.click()

    expect(page.get_by_text("Je bent uitgelogd.")).to_be_visible()
    deadline = time.monotonic() + 3
    while httpx.get(me, headers=headers).status_code != 401:  # the page does not wait for it
        assert time.monotonic() < deadline, "the token still works after signing out"
        time.sleep(0.1)
