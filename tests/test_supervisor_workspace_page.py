"""The supervisor's workspace (/supervisor) in a real browser: sections a supervisor moves
between, named in the URL (reload and back keep them), every message next to the button that
caused it; Medewerkers adds an adviser, Sluitingen closes today in two clicks, Menu shows what
callers hear. A real `kcc serve` (its clock on an open Tuesday, 1 December 2026) and headless
Chromium, as in test_supervisor_page.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from api.settings import DEFAULT_FLOW
from flows.loader import load_flow
from tests.conftest import REDIS_UP, REDIS_URL, SECRET_KEY
from tests.support.browser import Browser, Page, expect, open_page, open_signed_in
from tests.support.flow_drafts import OLD_WELCOME
from tests.support.servers import KccServer, open_kcc_serve
from tests.support.staff import adviser, supervisor

pytestmark = pytest.mark.slow  # a real `kcc serve` and a browser

SUPERVISOR_REDIS_URL = os.environ.get("KCC_TEST_SUPERVISOR_REDIS_URL", REDIS_URL)
PASSWORD = "correct horse battery staple"
SUPERVISOR = supervisor("s.jansen", PASSWORD)
ADVISER = adviser("a.bakker", PASSWORD)
TITLE = "Supervisor - Justis klantcontactcentrum"
FLOW = load_flow(DEFAULT_FLOW)
SECTIONS = ["now", "menu", "medewerkers", "sluitingen", "gesprekken", "flow-editor"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KccServer]:
    with open_kcc_serve(
        tmp_path_factory.mktemp("workspace"),
        secret_key=SECRET_KEY,
        staff=[SUPERVISOR, ADVISER],
        redis_url=SUPERVISOR_REDIS_URL if REDIS_UP else None,
    ) as served:
        yield served


@pytest.fixture
def page(browser: Browser, server: KccServer) -> Iterator[Page]:
    with open_page(browser, server.url, width=1366, height=768) as opened:
        yield opened


def open_section(page: Page, name: str) -> None:
    page.locator("#sections-nav").get_by_role("link", name=name, exact=True).click()


def expect_section(page: Page, shown: str) -> None:
    for name in SECTIONS:
        section = page.locator(f"[data-section='{name}']")
        # The attribute, not the size: "now" is an empty placeholder here.
        if name == shown:
            expect(section).not_to_have_attribute("hidden", "")
        else:
            expect(section).to_have_attribute("hidden", "")
    assert page.evaluate("location.hash") == f"#{shown}"


def expect_message_after(page: Page, element_id: str) -> None:
    """The message area stands right after the element (the button that caused it)."""
    expect(page.locator(f"#{element_id} + #messages")).to_have_count(1)


def test_sections_switch_and_survive_reload_and_back(page: Page) -> None:
    open_signed_in(page, "/supervisor", TITLE, SUPERVISOR)
    expect_section(page, "now")
    expect(page.locator("#now")).to_be_attached()  # the wallboard's place (filled elsewhere)
    rapporten = page.locator("#sections-nav").get_by_role("link", name="Rapporten")
    expect(rapporten).to_have_attribute("href", "/reports")

    open_section(page, "Medewerkers")
    expect_section(page, "medewerkers")
    expect(page.get_by_role("link", name="Medewerkers")).to_have_attribute("aria-current", "page")
    open_section(page, "Sluitingen")
    expect_section(page, "sluitingen")

    page.reload()
    expect(page.get_by_test_id("tools")).to_be_visible()
    expect_section(page, "sluitingen")
    page.go_back()
    expect_section(page, "medewerkers")
    page.go_back()
    expect_section(page, "now")


def test_the_publish_message_appears_next_to_the_editors_button(page: Page) -> None:
    open_signed_in(page, "/supervisor#flow-editor", TITLE, SUPERVISOR)
    expect_section(page, "flow-editor")
    page.get_by_role("button", name="Laad live versie").click()
    draft = page.get_by_label("YAML-tekst van het concept")
    expect(draft).to_have_value(DEFAULT_FLOW.read_text(encoding="utf-8"))
    draft.fill(draft.input_value().replace(OLD_WELCOME, "Welkom bij Justis."))
    publish = page.get_by_role("button", name="Publiceren")
    expect(publish).to_be_enabled()
    page.get_by_label("Wat is er veranderd en waarom?").fill("Kortere welkomsttekst")
    publish.click()

    notice = page.get_by_test_id("notice")
    expect(notice).to_have_text("Gepubliceerd: versie 2 is live.")
    expect_message_after(page, "publish")
    button, message = publish.bounding_box(), notice.bounding_box()
    assert button is not None and message is not None
    assert 0 <= message["y"] - (button["y"] + button["height"]) < 100  # right below it
    assert notice.is_visible()

    # Another section starts without the editor's message.
    open_section(page, "Menu")
    expect(notice).to_be_hidden()


def test_a_supervisor_adds_an_adviser_who_can_then_sign_in(page: Page, server: KccServer) -> None:
    open_signed_in(page, "/supervisor#medewerkers", TITLE, SUPERVISOR)
    users = page.get_by_test_id("users")
    expect(users.locator("tr[data-user='a.bakker'] td.role")).to_have_text("Adviseur")

    page.get_by_label("Inlognaam").fill("k.devries")
    page.locator("#new-skills").get_by_label("VOG rechtspersoon").check()
    page.get_by_role("button", name="Toevoegen").click()

    row = users.locator("tr[data-user='k.devries']")
    expect(row.locator("td")).to_have_text(
        [
            "Adviseur",
            "VOG rechtspersoon",
            "client:k_devries",
            "Ja",
            "WijzigenNieuw wachtwoordDeactiveren",
        ]
    )
    notice = page.get_by_test_id("notice")
    expect(notice).to_contain_text("Adviseur k.devries is toegevoegd. Eenmalig wachtwoord: ")
    expect_message_after(page, "user-add")
    password = notice.inner_text().split("Eenmalig wachtwoord: ")[1].split(" ")[0]
    token = httpx.post(
        f"{server.url}/api/token",
        data={"username": "k.devries", "password": password},
        timeout=10,
    )
    assert token.status_code == 200
    audit = page.get_by_test_id("user-audit").locator("tbody tr").first.locator("td")
    expect(audit.nth(1)).to_have_text(SUPERVISOR.name)
    expect(audit.nth(2)).to_have_text("Toegevoegd")
    expect(audit.nth(3)).to_have_text("k.devries")

    # Deactivating oneself is refused, in Dutch, at the top of the list.
    users.locator("tr[data-user='s.jansen']").get_by_role("button", name="Deactiveren").click()
    expect(page.get_by_test_id("error")).to_have_text("Je kunt je eigen account niet deactiveren.")
    expect_message_after(page, "users-title")


def test_close_today_in_two_clicks_see_it_listed_and_undo(page: Page) -> None:
    open_signed_in(page, "/supervisor#sluitingen", TITLE, SUPERVISOR)
    expect(page.get_by_test_id("closure-date")).to_have_value("2026-12-01")  # the service's today

    page.get_by_label("Hele dag").click()
    page.get_by_role("button", name="Sluiten", exact=True).click()

    notice = page.get_by_test_id("notice")
    expect(notice).to_contain_text("Gesloten op 01-12-2026. Versie ")
    expect_message_after(page, "closure-submit")
    today = page.get_by_test_id("closures").locator("tr[data-date='2026-12-01'] td")
    closed = "Het klantcontactcentrum is vandaag gesloten."
    expect(today).to_have_text(["01-12-2026", "dinsdag", "Gesloten", closed, "Ongedaan maken"])
    calendar = page.get_by_test_id("calendar").locator("tr[data-date='2026-12-01'] td")
    expect(calendar.nth(2)).to_have_text("Gesloten")

    page.get_by_role("button", name="Ongedaan maken: 01-12-2026").click()
    expect(notice).to_contain_text("De sluiting van 01-12-2026 is ongedaan gemaakt.")
    expect(page.get_by_test_id("closures").locator("tr[data-date='2026-12-01']")).to_have_count(0)
    expect(calendar.nth(2)).to_have_text("Open")


def test_the_menu_shows_what_callers_hear_and_no_node_ids(page: Page) -> None:
    open_signed_in(page, "/supervisor#menu", TITLE, SUPERVISOR)
    tree = page.get_by_test_id("menu-tree")
    # The welcome first (another test here may have published a shorter one).
    expect(tree.locator(".step-says").first).to_contain_text("Welkom bij Justis")
    main_menu = tree.locator("li[data-node='main_menu']").first
    expect(main_menu.locator(".step-label").first).to_have_text("Hoofdmenu")
    main_text = FLOW.prompts["main_menu"]["nl"]
    expect(main_menu.locator(".step-says").first).to_have_text(main_text)
    expect(main_menu.locator("li[data-node='vog_np_menu'] .step-how").first).to_have_text("Toets 1")
    expect(tree).to_contain_text("Wachtrij: VOG rechtspersoon \u2013 Overig")
    shown = tree.inner_text()
    assert "main_menu" not in shown and "queue_" not in shown and "verify_" not in shown

    # Collapsing a step hides what follows it.
    first_option = main_menu.locator("li[data-node='vog_np_menu']").first
    expect(first_option).to_be_visible()
    main_menu.locator("summary").first.click()
    expect(first_option).to_be_hidden()

    page.get_by_role("button", name="Engels").click()
    expect(main_menu.locator(".step-says").first).to_have_text(FLOW.prompts["main_menu"]["en"])
    expect(main_menu.locator(".step-label").first).to_have_text("Main menu")
