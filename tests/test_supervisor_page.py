"""The supervisor page (/supervisor) in a real browser: headless Debian Chromium and Playwright.

A real `kcc serve` runs in its own process (the real Redis when it is up, a SQLite file, a clock
that starts on an open Tuesday morning). The supervisor signs in, reads the live flow as a tree,
loads it into the editor, changes the Dutch welcome and breaks a target: the page names the line.
Fixed and published, version 2 is what `kcc call` hears; rolled back on the page, version 1 is
heard again, and the audit log shows both by the supervisor.

Chromium comes from Debian (`scripts/browser`); in CI a missing Chromium fails, it never skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from api.settings import DEFAULT_FLOW
from flows.loader import load_flow
from tests.conftest import REDIS_UP, REDIS_URL, SECRET_KEY
from tests.support.browser import (
    Browser,
    Page,
    expect,
    open_page,
    open_signed_in,
    submit_sign_in,
)
from tests.support.flow_drafts import MISTAKES, OLD_WELCOME, line_of, several_mistakes
from tests.support.servers import KccServer, open_kcc_serve, run_kcc
from tests.support.staff import Account, adviser, supervisor

pytestmark = pytest.mark.slow  # a real `kcc serve` and a browser

# A Redis database flushed before and after: the server shares it with nobody while it runs.
# KCC_TEST_REDIS_URL picks it (as for the other tests), KCC_TEST_SUPERVISOR_REDIS_URL overrides.
SUPERVISOR_REDIS_URL = os.environ.get("KCC_TEST_SUPERVISOR_REDIS_URL", REDIS_URL)
PASSWORD = "correct horse battery staple"
SUPERVISOR = supervisor("s.jansen", PASSWORD)
ADVISER = adviser("a.bakker", PASSWORD)
TWILIO_TOKEN = "supervisor-page-test-token-0123456789"
CALL_SECONDS = 60

NEW_WELCOME = "Goedemorgen, u belt met Justis, de screeningsautoriteit."
NOT_A_SUPERVISOR = "Dit account is geen supervisoraccount. Deze pagina is alleen voor supervisors."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KccServer]:
    """`kcc serve` in its own process, open for calls; the flow starts at version 1."""
    with open_kcc_serve(
        tmp_path_factory.mktemp("supervisor"),
        secret_key=SECRET_KEY,
        staff=[SUPERVISOR, ADVISER],
        redis_url=SUPERVISOR_REDIS_URL if REDIS_UP else None,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,  # `kcc call --url` signs with it too
    ) as served:
        yield served


@pytest.fixture
def page(browser: Browser, server: KccServer) -> Iterator[Page]:
    with open_page(browser, server.url, width=1366, height=768) as opened:
        yield opened


# -- helpers -----------------------------------------------------------------------------------


def sign_in(page: Page, account: Account) -> None:
    open_signed_in(page, "/supervisor", "Supervisor - Justis klantcontactcentrum", account)


def open_section(page: Page, name: str) -> None:
    """A section of the workspace, chosen in the navigation bar as a supervisor would."""
    page.locator("#sections-nav").get_by_role("link", name=name, exact=True).click()


def kcc_call(server: KccServer, keys: str) -> str:
    """`kcc call --url` in a real process, as a supervisor would try the live menu."""
    done = run_kcc(
        "call", "--url", server.url, "--keys", keys, env=server.env, timeout=CALL_SECONDS
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def select_in_draft(page: Page, line: int, text: str) -> None:
    """Put the selection on `text` in line `line` (1-based) of the editor, as a mouse would."""
    page.get_by_test_id("draft").evaluate(
        """(area, [line, text]) => {
            const lines = area.value.split("\\n");
            let start = 0;
            for (let i = 0; i < line - 1; i += 1) start += lines[i].length + 1;
            const at = lines[line - 1].indexOf(text);
            if (at < 0) throw new Error(`${text} is not on line ${line}`);
            area.focus();
            area.setSelectionRange(start + at, start + at + text.length);
        }""",
        [line, text],
    )


def selected_line(page: Page) -> tuple[int, str]:
    """The line the editor's selection starts on (1-based) and the selected text."""
    result = page.get_by_test_id("draft").evaluate(
        """(area) => [
            area.value.slice(0, area.selectionStart).split("\\n").length,
            area.value.slice(area.selectionStart, area.selectionEnd),
        ]"""
    )
    return int(result[0]), str(result[1])


# -- the tests ---------------------------------------------------------------------------------


def test_edit_break_fix_publish_call_and_roll_back(page: Page, server: KccServer) -> None:
    sign_in(page, SUPERVISOR)
    expect(page.get_by_test_id("user-name")).to_have_text(SUPERVISOR.name)
    expect(page.get_by_test_id("tools")).to_be_visible()
    expect(page.get_by_test_id("live-version")).to_have_text("versie 1")

    # The calendar (in Sluitingen) from the server's today: 24 December is short, Christmas
    # closed.
    open_section(page, "Sluitingen")
    calendar = page.get_by_test_id("calendar")
    expect(calendar.locator("tbody tr")).to_have_count(30)
    expect(calendar.locator("tbody tr").first.locator("td")).to_have_text(
        ["01-12-2026", "dinsdag", "Open", "09:00 - 17:00", ""]
    )
    expect(calendar.locator("tr[data-date='2026-12-24'] td")).to_have_text(
        [
            "24-12-2026",
            "donderdag",
            "Open",
            "09:00 - 15:00",
            "Op 24 december is het klantcontactcentrum bereikbaar tot 15.00 uur.",
        ]
    )
    expect(calendar.locator("tr[data-date='2026-12-25'] td")).to_have_text(
        ["25-12-2026", "vrijdag", "Gesloten", "-", "Eerste kerstdag"]
    )

    # The live flow's steps (in the Flow-editor): the welcome first, in both languages, leading
    # to the hours check.
    open_section(page, "Flow-editor")
    welcome = page.locator("#node-welcome")
    expect(page.get_by_test_id("tree").locator("article").first).to_have_id("node-welcome")
    expect(welcome.locator("dd[data-lang=nl] .text")).to_have_text(OLD_WELCOME)
    expect(welcome.locator("dd[data-lang=en] .text")).to_have_text(
        load_flow(DEFAULT_FLOW).prompts["welcome"]["en"]
    )
    expect(welcome.get_by_role("link", name="opening_hours")).to_have_attribute(
        "href", "#node-opening_hours"
    )
    main_menu = page.locator("#node-main_menu")
    expect(main_menu.locator(".edges li").first).to_have_text("toets 1 \u2192naar vog_np_menu")
    expect(page.locator("#node-queue_vog_rp")).to_contain_text("wachtrij vog_rp/general")

    # Load the live version into the editor.
    publish = page.get_by_role("button", name="Publiceren")
    expect(publish).to_be_disabled()
    page.get_by_role("button", name="Laad live versie").click()
    draft = page.get_by_label("YAML-tekst van het concept")
    expect(draft).to_have_value(DEFAULT_FLOW.read_text(encoding="utf-8"))
    summary = page.get_by_test_id("validation-summary")
    expect(summary).to_have_text("Geen fouten gevonden. Het concept is nog ongewijzigd.")
    live_text = draft.input_value()

    # A new Dutch welcome (typed over the old one) and a menu whose on_fail goes nowhere.
    welcome_line = line_of(live_text, OLD_WELCOME, "prompts:")
    select_in_draft(page, welcome_line, OLD_WELCOME)
    page.keyboard.type(NEW_WELCOME)
    expect(summary).to_have_text("Geen fouten gevonden.")
    expect(publish).to_be_enabled()

    broken_line = line_of(live_text, "on_fail: queue_general", "  main_menu:\n    kind: menu")
    select_in_draft(page, broken_line, "queue_general")
    page.keyboard.type("nergens")
    expect(publish).to_be_disabled()  # until the check has answered, and then for the error
    problems = page.get_by_test_id("problems").get_by_role("button")
    expect(problems).to_have_text(
        [
            f"regel {broken_line}: nodes.main_menu.on_fail: Onbekend doel 'nergens': er is geen "
            "node met die naam."
        ]
    )
    expect(summary).to_have_text(
        f"1 fout gevonden, de eerste op regel {broken_line}. "
        "Klik op een fout om naar die regel te gaan."
    )
    expect(summary).to_have_attribute("data-state", "problems")
    gutter_row = page.get_by_test_id("gutter").locator(f"div[data-line='{broken_line}']")
    expect(gutter_row).to_have_class("line-error")
    expect(page.get_by_test_id("gutter").locator(".line-error")).to_have_count(1)
    expect(publish).to_be_disabled()

    # The problem leads to its line: the whole line is selected, so typing replaces it.
    problems.first.click()
    expect(draft).to_be_focused()
    assert selected_line(page) == (broken_line, "    on_fail: nergens")
    page.keyboard.type("    on_fail: queue_general")
    expect(summary).to_have_text("Geen fouten gevonden.")
    expect(problems).to_have_count(0)
    expect(page.get_by_test_id("gutter").locator(".line-error")).to_have_count(0)
    expect(publish).to_be_enabled()
    assert draft.input_value() == live_text.replace(OLD_WELCOME, NEW_WELCOME)

    # Publishing needs a comment for the audit log.
    publish.click()
    expect(page.get_by_test_id("error")).to_have_text(
        "Vul in wat er veranderd is en waarom: dat komt in het logboek."
    )
    expect(page.get_by_label("Wat is er veranderd en waarom?")).to_be_focused()
    page.get_by_label("Wat is er veranderd en waarom?").fill("Nieuwe welkomsttekst")
    publish.click()
    expect(page.get_by_test_id("notice")).to_have_text("Gepubliceerd: versie 2 is live.")
    expect(page.get_by_test_id("error")).to_be_hidden()
    expect(page.get_by_test_id("live-version")).to_have_text("versie 2")
    expect(welcome.locator("dd[data-lang=nl] .text")).to_have_text(NEW_WELCOME)
    history = page.get_by_test_id("history")
    expect(history.locator("tbody tr")).to_have_count(2)
    expect(history.locator("tbody tr").first).to_have_attribute("data-live", "true")
    expect(history.locator("tbody tr").first.locator("th")).to_have_text("Versie 2live")
    expect(history.locator("tbody tr").first).to_contain_text("Nieuwe welkomsttekst")

    # Publishing the same text again changes nothing: the page says so.
    page.get_by_label("Wat is er veranderd en waarom?").fill("Nog een keer")
    publish.click()
    expect(page.get_by_test_id("error")).to_have_text(
        "Niet gepubliceerd. Deze tekst is al live (versie 2). Er is niets veranderd."
    )

    # A caller now hears the new welcome.
    heard = kcc_call(server, "2 #")
    assert NEW_WELCOME in heard
    assert OLD_WELCOME not in heard
    assert "-- waiting in queue" in heard

    # The difference between version 1 and the live version 2.
    page.get_by_role("button", name="Diff met live: versie 1").click()
    expect(page.get_by_test_id("diff-title")).to_have_text(
        "Verschil van versie 1 naar versie 2 (live)"
    )
    diff = page.get_by_test_id("diff")
    expect(diff.locator(".diff-del")).to_have_text([f'-    nl: "{OLD_WELCOME}"'])
    expect(diff.locator(".diff-add")).to_have_text([f'+    nl: "{NEW_WELCOME}"'])
    expect(diff.locator(".diff-file")).to_have_text(["--- version 1", "+++ version 2"])

    # Roll back to version 1, after confirming.
    page.get_by_role("button", name="Terugzetten: versie 1").click()
    confirm = page.get_by_test_id("rollback-confirm")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("Versie 1")
    page.get_by_role("button", name="Annuleren").click()
    expect(confirm).to_be_hidden()
    expect(page.get_by_test_id("live-version")).to_have_text("versie 2")
    page.get_by_role("button", name="Terugzetten: versie 1").click()
    page.get_by_label("Reden").fill("Welkomsttekst nog niet goedgekeurd")
    page.get_by_role("button", name="Ja, zet versie 1 terug").click()
    expect(page.get_by_test_id("notice")).to_have_text("Teruggezet: versie 1 is weer live.")
    expect(confirm).to_be_hidden()
    expect(page.get_by_test_id("live-version")).to_have_text("versie 1")
    expect(welcome.locator("dd[data-lang=nl] .text")).to_have_text(OLD_WELCOME)
    expect(history.locator("tr[data-version='1']")).to_have_attribute("data-live", "true")
    expect(history.locator("tr[data-version='2']")).to_have_attribute("data-live", "false")
    expect(page.get_by_role("button", name="Terugzetten: versie 2")).to_be_visible()

    # The audit log, newest first: who did what, from which version to which.
    audit = page.get_by_test_id("audit").locator("tbody tr")
    expect(audit).to_have_count(3)
    expect(audit.nth(0).locator("td").nth(1)).to_have_text(SUPERVISOR.name)
    expect(audit.nth(0).locator("td").nth(2)).to_have_text("Teruggezet")
    expect(audit.nth(0).locator("td").nth(3)).to_have_text("versie 2")
    expect(audit.nth(0).locator("td").nth(4)).to_have_text("versie 1")
    expect(audit.nth(0).locator("td").nth(5)).to_have_text("Welkomsttekst nog niet goedgekeurd")
    expect(audit.nth(1).locator("td").nth(1)).to_have_text(SUPERVISOR.name)
    expect(audit.nth(1).locator("td").nth(2)).to_have_text("Gepubliceerd")
    expect(audit.nth(1).locator("td").nth(3)).to_have_text("versie 1")
    expect(audit.nth(1).locator("td").nth(4)).to_have_text("versie 2")
    expect(audit.nth(1).locator("td").nth(5)).to_have_text("Nieuwe welkomsttekst")
    expect(audit.nth(2).locator("td").nth(4)).to_have_text("versie 1")

    # Callers hear the old welcome again.
    heard = kcc_call(server, "2 #")
    assert OLD_WELCOME in heard
    assert NEW_WELCOME not in heard


def test_every_mistake_of_a_draft_is_listed_in_dutch_at_its_line(page: Page) -> None:
    """A draft with mistakes of every sort: all of them at once, in Dutch, at their lines; the
    gutter marks each line; fixing one takes only that one away."""
    sign_in(page, SUPERVISOR)
    open_section(page, "Flow-editor")
    page.get_by_role("button", name="Laad live versie").click()
    summary = page.get_by_test_id("validation-summary")
    expect(summary).to_have_text("Geen fouten gevonden. Het concept is nog ongewijzigd.")

    draft = page.get_by_label("YAML-tekst van het concept")
    text = several_mistakes()
    draft.fill(text)
    problems = page.get_by_test_id("problems").get_by_role("button")
    expect(problems).to_have_count(len(MISTAKES))
    lines = sorted((line_of(text, m.fragment, m.after), m.dutch) for m in MISTAKES)
    shown = problems.all_inner_texts()
    for (line, dutch), item in zip(lines, shown, strict=True):
        assert item.startswith(f"regel {line}: {dutch}"), (line, dutch, shown)
    for mistake in MISTAKES:  # never the English
        assert not any(mistake.message in item for item in shown), shown
    expect(summary).to_have_text(
        f"{len(MISTAKES)} fouten gevonden, de eerste op regel {lines[0][0]}. "
        "Klik op een fout om naar die regel te gaan."
    )
    gutter = page.get_by_test_id("gutter")
    expect(gutter.locator(".line-error")).to_have_count(len({line for line, _ in lines}))
    for line, _ in lines:
        expect(gutter.locator(f"div[data-line='{line}']")).to_have_class("line-error")

    # Typed: the unknown target fixed, the other problems stay.
    target_line = line_of(text, '"2": verify_vog_rpp')
    select_in_draft(page, target_line, "verify_vog_rpp")
    page.keyboard.type("verify_vog_rp")
    expect(problems).to_have_count(len(MISTAKES) - 1)
    expect(problems.filter(has_text="Onbekend doel")).to_have_count(0)
    expect(page.get_by_role("button", name="Publiceren")).to_be_disabled()


def test_an_adviser_gets_a_message_and_no_tools(page: Page, server: KccServer) -> None:
    sign_in(page, ADVISER)
    expect(page.get_by_test_id("error")).to_have_text(NOT_A_SUPERVISOR)
    expect(page.get_by_test_id("tools")).to_be_hidden()
    expect(page.get_by_test_id("login")).to_be_visible()
    expect(page.get_by_test_id("tree").locator("article")).to_have_count(0)
    assert page.evaluate("sessionStorage.getItem('kcc.supervisor.token')") is None


def test_a_wrong_password_and_an_expired_session_ask_to_sign_in(
    page: Page, server: KccServer
) -> None:
    page.goto("/supervisor")
    submit_sign_in(page, SUPERVISOR.name, "not the password")
    expect(page.get_by_test_id("error")).to_have_text("Onjuiste gebruikersnaam of wachtwoord.")
    expect(page.get_by_test_id("tools")).to_be_hidden()

    # Signed in, then the token stops being accepted: the next request sends the page back.
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Inloggen").click()
    expect(page.get_by_test_id("tools")).to_be_visible()
    page.evaluate("sessionStorage.setItem('kcc.supervisor.token', 'not-a-valid-token')")
    page.reload()
    expect(page.get_by_test_id("error")).to_have_text(
        "Je sessie is verlopen of ongeldig. Log opnieuw in."
    )
    expect(page.get_by_test_id("login")).to_be_visible()
    expect(page.get_by_test_id("tools")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('kcc.supervisor.token')") is None


def test_the_page_needs_nothing_from_outside(page: Page, server: KccServer) -> None:
    """No CDN, no web fonts: every request the page makes, signed in too, goes to the app."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in(page, SUPERVISOR)
    open_section(page, "Sluitingen")
    expect(page.get_by_test_id("calendar").locator("tbody tr")).to_have_count(30)
    open_section(page, "Flow-editor")
    expect(page.get_by_test_id("audit").locator("tbody tr").first).to_be_visible()
    assert any(url.endswith("/api/flows/tree") for url in requested)
    outside = [url for url in requested if not url.startswith((server.url, "data:"))]
    assert outside == []


def test_the_page_is_served_without_signing_in(server: KccServer) -> None:
    answer = httpx.get(f"{server.url}/supervisor", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "/static/supervisor.js" in answer.text
    # The data is not: every flow endpoint wants a supervisor's token.
    assert httpx.get(f"{server.url}/api/flows/tree", timeout=5).status_code == 401
