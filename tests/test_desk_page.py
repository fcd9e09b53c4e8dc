"""The adviser desk (/desk) in a real browser: headless Debian Chromium driven by Playwright.

A real `kcc serve` runs in its own process with the simulated telephony of the embedded demo (no
Twilio account), the real Redis when it is up, a SQLite file and a clock that starts on an open
Tuesday morning (KCC_NOW) and runs on. The software phone places calls over HTTP, signed as
Twilio signs them; the adviser signs in on the page, becomes available, sees the call's card,
answers and hangs up with the demo phone, wraps up and is ready for the next call.

Chromium comes from Debian (`scripts/browser`, run by `scripts/test` in CI); Playwright never
downloads a browser here.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from api.cli.phone import Phone
from api.database.engine import make_engine
from api.settings import PLACEHOLDER_AUTH_TOKEN
from ivr.twiml import CallUrls
from routing.adviser_history import WrapUp
from tests.conftest import REDIS_UP, SECRET_KEY
from tests.support import staff
from tests.support.browser import (
    Browser,
    Page,
    expect,
    open_page,
    open_signed_in,
    submit_sign_in,
)
from tests.support.database import sqlite_url
from tests.support.desk_server import DESK_REDIS_URL, PASSWORD, seed_demo_database
from tests.support.servers import KccServer, open_kcc_serve
from tests.support.staff import Account

pytestmark = pytest.mark.slow  # a real `kcc serve` and a browser

PHONE_SECONDS = 30
# Set KCC_DESK_SCREENSHOT=/tmp/desk.png to keep a picture of the call card.
SCREENSHOT = os.environ.get("KCC_DESK_SCREENSHOT")


def _new_adviser(database_url: str) -> Account:
    """A new adviser for all products; offline until they say otherwise."""
    account = staff.adviser(f"adviser{uuid.uuid4().hex[:8]}", PASSWORD)
    staff.add_staff_at(database_url, account)
    return account


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KccServer]:
    """`kcc serve` in its own process: the embedded demo, open for calls."""
    tmp = tmp_path_factory.mktemp("desk")
    seed_demo_database(sqlite_url(tmp))
    # No TWILIO_AUTH_TOKEN and no KCC_TWILIO_API_BASE: the placeholder token, so the telephony
    # is simulated and the desk's demo phone answers and hangs up.
    with open_kcc_serve(
        tmp, secret_key=SECRET_KEY, redis_url=DESK_REDIS_URL if REDIS_UP else None
    ) as served:
        assert httpx.get(f"{served.url}/api/config", timeout=5).status_code == 401
        config = httpx.get(
            f"{served.url}/api/config",
            headers=staff.signed_in_to(served.url, _new_adviser(served.database_url)),
            timeout=5,
        ).json()
        assert config["simulated_telephony"] is True, config
        yield served


@pytest.fixture
def page(browser: Browser, server: KccServer) -> Iterator[Page]:
    with open_page(browser, server.url, width=1280, height=800) as opened:
        yield opened


@pytest.fixture
def adviser(server: KccServer) -> Iterator[Account]:
    """A new adviser (all products) per test; signed off afterwards so no call goes to them."""
    account = _new_adviser(server.database_url)
    yield account
    headers = staff.signed_in_to(server.url, account)
    httpx.post(f"{server.url}/api/advisers/me/status", json={"status": "offline"}, headers=headers)


# -- the software phone, in a thread of its own (Playwright's sync API owns this one's loop) ----


class Caller:
    """One call over HTTP to the server, signed with the demo's placeholder token."""

    def __init__(self, server: KccServer, caller: str) -> None:
        self._server = server
        self._caller = caller
        self._call_sid: str | None = None
        self._pool = ThreadPoolExecutor(max_workers=1)

    def _phone(self, client: httpx.AsyncClient) -> Phone:
        phone = Phone(
            client,
            public_url=self._server.url,
            auth_token=PLACEHOLDER_AUTH_TOKEN,
            caller=self._caller,
            call_sid=self._call_sid,
        )
        self._call_sid = phone.call_sid
        return phone

    async def _dial(self, keys: list[str]) -> str | None:
        async with httpx.AsyncClient(base_url=self._server.url, timeout=10) as client:
            phone = self._phone(client)
            await phone.dial()
            for key in keys:
                await phone.press(key)
            assert phone.last is not None
            return phone.last.queue

    async def _hang_up(self) -> None:
        async with httpx.AsyncClient(base_url=self._server.url, timeout=10) as client:
            (await self._phone(client).hang_up()).raise_for_status()

    async def _ask_callback(self) -> str:
        async with httpx.AsyncClient(base_url=self._server.url, timeout=10) as client:
            phone = self._phone(client)
            url = CallUrls(self._server.url, "nl").callback_choice()
            response = await phone.post(url, {"Digits": "1"})
            response.raise_for_status()
            return response.text

    def dial(self, *keys: str) -> str | None:
        """Dial and press the keys; returns the queue the call waits in (it stays on the line)."""
        return self._pool.submit(asyncio.run, self._dial(list(keys))).result(PHONE_SECONDS)

    def ask_callback(self) -> str:
        """Press 1 in the queue's callback offer (keep the place, be called back); the TwiML."""
        return self._pool.submit(asyncio.run, self._ask_callback()).result(PHONE_SECONDS)

    @property
    def call_sid(self) -> str | None:
        return self._call_sid

    def hang_up(self) -> None:
        if self._call_sid is not None:
            self._pool.submit(asyncio.run, self._hang_up()).result(PHONE_SECONDS)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@pytest.fixture
def call(server: KccServer) -> Iterator[Caller]:
    caller = Caller(server, "+31612345678")
    try:
        yield caller
    finally:
        try:
            caller.hang_up()  # the caller's status callback: the call ends and leaves the queue
        finally:
            caller.close()


# -- steps on the page -------------------------------------------------------------------------


def sign_in(page: Page, account: Account) -> None:
    open_signed_in(page, "/desk", "Adviseursdesk - Justis klantcontactcentrum", account)
    expect(page.get_by_test_id("adviser-name")).to_have_text(account.name)
    expect(page.get_by_test_id("state")).to_have_text("Afgemeld")
    # The event stream is open before any call is placed (the desk only hears what comes later).
    expect(page.get_by_test_id("connection")).to_have_attribute("data-connected", "true")


def become_available(page: Page) -> None:
    page.get_by_role("button", name="Beschikbaar", exact=True).click()
    expect(page.get_by_test_id("state")).to_have_text("Beschikbaar")
    expect(page.get_by_test_id("idle-text")).to_contain_text("Je bent beschikbaar")


def answer_hang_up_and_wrap_up(page: Page, category: str, note: str) -> None:
    page.get_by_role("button", name="Opnemen").click()
    expect(page.get_by_test_id("state")).to_have_text("In gesprek")
    expect(page.get_by_test_id("card-title")).to_have_text("In gesprek")
    expect(page.get_by_role("button", name="Ophangen")).to_be_enabled()
    expect(page.get_by_role("button", name="Ophangen")).to_be_focused()

    page.get_by_role("button", name="Ophangen").click()
    expect(page.get_by_test_id("state")).to_have_text("Nawerk")
    expect(page.get_by_test_id("wrap-up")).to_be_visible()
    expect(page.get_by_test_id("card-title")).to_have_text("Afgerond gesprek")
    page.get_by_label("Categorie van de vraag").select_option(label=category)
    page.get_by_label("Notitie").fill(note)
    page.get_by_role("button", name="Nawerk opslaan").click()

    ready = page.get_by_role("button", name="Klaar voor volgende gesprek")
    expect(ready).to_be_visible()
    expect(page.get_by_test_id("wrap-up")).to_be_hidden()
    expect(page.get_by_test_id("notice")).to_have_text("Het nawerk is opgeslagen.")
    ready.click()
    expect(page.get_by_test_id("state")).to_have_text("Beschikbaar")
    expect(page.get_by_test_id("call-card")).to_be_hidden()
    expect(page.get_by_test_id("wrap-done")).to_be_hidden()


def wrap_ups(server: KccServer, adviser: Account) -> list[WrapUp]:
    engine = make_engine(server.database_url)
    try:
        with Session(engine) as session:
            return list(session.exec(select(WrapUp).where(WrapUp.adviser == adviser.name)).all())
    finally:
        engine.dispose()


# -- the tests ---------------------------------------------------------------------------------


def test_a_verified_status_call_from_offer_to_ready(
    page: Page, server: KccServer, adviser: Account, call: Caller, tmp_path: Path
) -> None:
    sign_in(page, adviser)
    expect(page.get_by_test_id("demo-phone")).to_be_visible()
    expect(page.get_by_role("button", name="Opnemen")).to_be_disabled()
    become_available(page)

    # Status of application 1234567 (born 3 November 1985), then "1": an adviser, please.
    queue = call.dial("1", "1", "1234567#", "03111985", "1")
    assert queue == "kcc-vog_np"

    card = page.get_by_test_id("call-card")
    expect(card).to_be_visible()
    expect(page.get_by_test_id("state")).to_have_text("Gesprek wordt aangeboden")
    expect(page.get_by_test_id("card-title")).to_have_text("Gesprek wordt aangeboden")
    expect(page.get_by_test_id("card-product")).to_have_text("VOG natuurlijk persoon")
    expect(page.get_by_test_id("card-theme")).to_have_text("Status aanvraag")
    badge = page.get_by_test_id("verification")
    expect(badge).to_have_text("Geverifieerd")
    expect(badge).to_have_attribute("data-verification", "verified")
    expect(page.get_by_test_id("card-application")).to_have_text("1234567")
    expect(page.get_by_test_id("card-status")).to_have_text("In behandeling")
    expect(page.get_by_test_id("card-status-date")).to_have_text("03-11-2026")
    expect(page.get_by_test_id("card-unverified")).to_be_hidden()
    expect(page.get_by_test_id("card-caller")).to_have_text("+31612345678")
    expect(page.get_by_test_id("card-language")).to_have_text("Nederlands")
    expect(page.get_by_test_id("card-path").locator("li")).to_have_text(
        [
            "Hoofdmenu: toets 1",
            "Menu VOG natuurlijk persoon: toets 1",
            "Identiteitscontrole: geverifieerd",
            "Statusinformatie: adviseur gevraagd",
        ]
    )
    # The time waited counts up (m:ss) while the call is offered.
    waited = page.get_by_test_id("card-waited")
    expect(waited).to_have_text(re.compile(r"^0:0\d$"))
    before = waited.inner_text()
    expect(waited).not_to_have_text(before, timeout=3_000)
    expect(waited).to_have_text(re.compile(r"^0:\d\d$"))
    expect(page.get_by_role("button", name="Opnemen")).to_be_enabled()
    card.screenshot(path=tmp_path / "card.png")
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT)

    answer_hang_up_and_wrap_up(
        page, "Status aanvraag", "Status uitgelegd; beller belt terug bij vragen."
    )

    [saved] = wrap_ups(server, adviser)
    assert saved.category == "status"
    assert saved.note == "Status uitgelegd; beller belt terug bij vragen."
    assert saved.call_sid == call.call_sid


def test_the_departments_open_now_are_listed_for_a_transfer_during_a_call(
    page: Page, adviser: Account, call: Caller
) -> None:
    sign_in(page, adviser)
    expect(page.get_by_role("heading", name="Doorverbinden")).to_be_visible()
    departments = page.get_by_test_id("department")
    # Tuesday 10:00: the KCC is open and so are the departments that follow its hours; the
    # pardons team (Gratie) only answers from 13:00, so it is not offered.
    expect(departments).to_have_text(
        [
            "Wet wapens en munitie (tot 17.00 uur)",
            "BOA (tot 17.00 uur)",
            "Wpbr en TRACK (tot 17.00 uur)",
            "Bezwaar (tot 17.00 uur)",
        ]
    )
    expect(page.locator("[data-department=gratie]")).to_have_count(0)
    expect(page.get_by_test_id("departments-none")).to_be_hidden()
    expect(page.get_by_test_id("queue").first).to_have_text("VOG natuurlijk persoon")
    submit = page.get_by_role("button", name="Doorverbinden", exact=True)
    expect(submit).to_be_disabled()  # no call to transfer

    become_available(page)
    assert call.dial("6", "3", "#") == "kcc-wwm"
    page.get_by_role("button", name="Opnemen").click()
    expect(page.get_by_test_id("state")).to_have_text("In gesprek")
    # The demo's simulated telephony has no conference to transfer in: the page says so.
    expect(submit).to_be_disabled()
    expect(page.get_by_test_id("transfer-hint")).to_have_text(
        "Doorverbinden kan alleen met een Twilio-account, niet in de demo."
    )
    page.get_by_role("button", name="Ophangen").click()
    expect(page.get_by_test_id("state")).to_have_text("Nawerk")


def test_an_unverified_call_shows_the_warning_and_no_application(
    page: Page, server: KccServer, adviser: Account, call: Caller
) -> None:
    sign_in(page, adviser)
    # A 409 of the service is shown in Dutch: a break needs signing in first.
    page.get_by_role("button", name="Pauze").click()
    expect(page.get_by_test_id("error")).to_have_text(
        "Meld je eerst beschikbaar voordat je pauze neemt."
    )
    expect(page.get_by_test_id("state")).to_have_text("Afgemeld")
    become_available(page)
    expect(page.get_by_test_id("error")).to_be_hidden()

    # VOG for an organisation, no application number at hand (#).
    queue = call.dial("2", "#")
    assert queue == "kcc-vog_rp"

    expect(page.get_by_test_id("call-card")).to_be_visible()
    expect(page.get_by_test_id("card-product")).to_have_text("VOG rechtspersoon")
    expect(page.get_by_test_id("card-theme")).to_have_text("Overig")
    badge = page.get_by_test_id("verification")
    expect(badge).to_have_text(
        "Niet geverifieerd - controleer identiteit (beller heeft geen aanvraagnummer)"
    )
    expect(badge).to_have_attribute("data-verification", "skipped")
    expect(page.get_by_test_id("card-application")).to_be_hidden()
    expect(page.get_by_test_id("card-status")).to_be_hidden()
    expect(page.get_by_test_id("card-unverified")).to_be_visible()
    expect(page.get_by_test_id("card-path").locator("li")).to_have_text(
        ["Hoofdmenu: toets 2", "Identiteitscontrole: overgeslagen (geen aanvraagnummer)"]
    )

    answer_hang_up_and_wrap_up(page, "Doorverwezen naar afdeling", "")

    [saved] = wrap_ups(server, adviser)
    assert saved.category == "referred"
    assert saved.note == ""


def test_the_wrap_up_form_lists_only_the_codes_of_the_calls_product_in_dutch(
    page: Page, server: KccServer, adviser: Account, call: Caller
) -> None:
    sign_in(page, adviser)
    become_available(page)
    assert call.dial("2", "#") == "kcc-vog_rp"
    page.get_by_role("button", name="Opnemen").click()
    expect(page.get_by_test_id("state")).to_have_text("In gesprek")
    page.get_by_role("button", name="Ophangen").click()
    expect(page.get_by_test_id("wrap-up")).to_be_visible()

    # The flow's codes for VOG RP (its own, then the shared ones); none of VOG NP's own.
    categories = page.get_by_label("Categorie van de vraag").locator("option")
    expect(categories).to_have_text(
        [
            "Kies een categorie",
            "Status aanvraag",
            "Procedure",
            "Bezwaar",
            "eHerkenning",
            "Geen aanvraag bekend",
            "Doorverbonden",
            "Doorverwezen naar afdeling",
            "Teruggebeld",
            "Geen vraag",
            "Overig",
        ]
    )
    expect(categories.filter(has_text="Kinderopvang")).to_have_count(0)
    # The theme of the call ("other": no number at hand) is suggested.
    expect(page.get_by_label("Categorie van de vraag")).to_have_value("other")
    page.get_by_label("Categorie van de vraag").select_option(label="eHerkenning")
    page.get_by_role("button", name="Nawerk opslaan").click()
    expect(page.get_by_test_id("notice")).to_have_text("Het nawerk is opgeslagen.")
    [saved] = wrap_ups(server, adviser)
    assert (saved.category, saved.call_sid) == ("eherkenning", call.call_sid)


def test_a_caller_who_hangs_up_while_offered_takes_the_card_away(
    page: Page, server: KccServer, adviser: Account, call: Caller
) -> None:
    sign_in(page, adviser)
    become_available(page)
    call.dial("2", "#")
    expect(page.get_by_test_id("call-card")).to_be_visible()
    expect(page.get_by_test_id("state")).to_have_text("Gesprek wordt aangeboden")

    call.hang_up()

    expect(page.get_by_test_id("call-card")).to_be_hidden()
    expect(page.get_by_test_id("state")).to_have_text("Beschikbaar")
    expect(page.get_by_test_id("notice")).to_have_text(
        "De beller heeft opgehangen voordat het gesprek werd aangenomen."
    )
    expect(page.get_by_test_id("wrap-up")).to_be_hidden()
    assert wrap_ups(server, adviser) == []


def test_a_callback_request_is_called_back_from_the_desk(
    page: Page, server: KccServer, adviser: Account, call: Caller
) -> None:
    # Nobody is available yet: the caller waits, asks to be called back and hangs up.
    assert call.dial("2", "#") == "kcc-vog_rp"
    assert "<Leave" in call.ask_callback()
    call.hang_up()

    sign_in(page, adviser)
    page.get_by_role("button", name="Beschikbaar", exact=True).click()  # the request is offered

    expect(page.get_by_test_id("call-card")).to_be_visible()
    expect(page.get_by_test_id("card-title")).to_have_text("Terugbelverzoek wordt aangeboden")
    expect(page.get_by_test_id("callback-text")).to_contain_text("niet aan de lijn")
    expect(page.get_by_test_id("card-product")).to_have_text("VOG rechtspersoon")
    expect(page.get_by_role("button", name="Opnemen")).to_be_disabled()

    page.get_by_role("button", name="Terugbellen").click()
    expect(page.get_by_test_id("card-title")).to_have_text("Beller wordt teruggebeld")
    expect(page.get_by_test_id("callback-text")).to_contain_text("+31612345678 wordt gebeld")
    expect(page.get_by_role("button", name="Terugbellen")).to_be_disabled()

    # The demo phone plays the caller picking up.
    answer_hang_up_and_wrap_up(page, "Procedure", "Teruggebeld over de procedure.")

    [saved] = wrap_ups(server, adviser)
    assert saved.category == "procedure"
    assert saved.call_sid == call.call_sid


def test_a_wrong_password_and_an_expired_session_ask_to_sign_in(
    page: Page, server: KccServer, adviser: Account
) -> None:
    page.goto("/desk")
    submit_sign_in(page, adviser.name, "not the password")
    expect(page.get_by_test_id("error")).to_have_text("Onjuiste gebruikersnaam of wachtwoord.")
    expect(page.get_by_test_id("desk")).to_be_hidden()
    expect(page.get_by_label("Wachtwoord")).to_be_focused()

    # A token the service no longer accepts (here: not one of its tokens at all).
    page.evaluate("sessionStorage.setItem('kcc.desk.token', 'not-a-valid-token')")
    page.reload()
    expect(page.get_by_test_id("error")).to_have_text(
        "Je sessie is verlopen of ongeldig. Log opnieuw in."
    )
    expect(page.get_by_test_id("login")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('kcc.desk.token')") is None


def test_the_page_needs_nothing_from_outside(page: Page, server: KccServer) -> None:
    """No CDN, no web fonts: every request the page makes goes to the app itself."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/desk")
    expect(page.get_by_test_id("login")).to_be_visible()
    assert requested
    outside = [url for url in requested if not url.startswith((server.url, "data:"))]
    assert outside == []
