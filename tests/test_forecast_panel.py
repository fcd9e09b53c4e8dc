"""The forecast panel (static/forecast_panel.js) in a real browser: headless Debian Chromium and
Playwright, against a real `kcc serve` whose clock starts on Tuesday 1 December 2026.

No page has the panel yet (the reports page will): the test signs in on /supervisor, loads the
panel's script there and renders it into an element of its own, as the reports page will. The
weeks before are 5 October .. 29 November 2026: 12 calls every Monday 10:00 in October, 24 in
November. Every request that would leave the app is blocked and fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from api.database.engine import make_engine
from ivr.records import CallRecord
from tests.conftest import REDIS_UP, REDIS_URL, SECRET_KEY
from tests.support.browser import Browser, Page, expect, open_page, open_signed_in
from tests.support.database import sqlite_url
from tests.support.servers import KccServer, open_kcc_serve
from tests.support.staff import new_database_with_staff, supervisor

pytestmark = pytest.mark.slow  # a real `kcc serve` and a browser

PANEL_REDIS_URL = os.environ.get("KCC_TEST_SUPERVISOR_REDIS_URL", REDIS_URL)
SUPERVISOR = supervisor("s.prognose", "forecast panel password")
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
MONDAYS = [date(2026, 10, 5) + timedelta(weeks=w) for w in range(8)]


def _seed(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            for monday in MONDAYS:
                count = 12 if monday.month == 10 else 24
                for i in range(count):
                    start = datetime(2026, monday.month, monday.day, 10, 2 * i, tzinfo=AMSTERDAM)
                    session.add(
                        CallRecord(
                            call_sid=f"CA{monday.isoformat()}-{i}",
                            started_at=start.astimezone(UTC),
                            ended_at=(start + timedelta(minutes=6)).astimezone(UTC),
                            flow="kcc",
                            flow_version="v1",
                            language="nl",
                            product="vog_np",
                            verification="none",
                            outcome="answered",
                            call_status="completed",
                            queued_at=(start + timedelta(seconds=30)).astimezone(UTC),
                        )
                    )
            session.commit()
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KccServer]:
    directory = tmp_path_factory.mktemp("forecast-panel")
    database_url = sqlite_url(directory)
    new_database_with_staff(database_url, SUPERVISOR)
    _seed(database_url)
    with open_kcc_serve(
        directory,
        secret_key=SECRET_KEY,
        database_url=database_url,
        redis_url=PANEL_REDIS_URL if REDIS_UP else None,
    ) as served:
        yield served


@pytest.fixture
def page(browser: Browser, server: KccServer) -> Iterator[Page]:
    with open_page(browser, server.url, width=1366, height=900) as opened:
        yield opened


def _render_panel(page: Page) -> None:
    """The panel's script and an element for it on the signed-in supervisor page."""
    open_signed_in(page, "/supervisor", "Supervisor - Justis klantcontactcentrum", SUPERVISOR)
    expect(page.get_by_test_id("user-name")).to_have_text(SUPERVISOR.name)
    page.add_script_tag(url="/static/forecast_panel.js")
    page.evaluate(
        """() => {
            const section = document.createElement("section");
            section.id = "forecast-panel";
            section.innerHTML = "<h2>Prognose</h2><div id='forecast-body'></div>";
            document.body.append(section);
            return window.renderForecastPanel(document.getElementById("forecast-body"));
        }"""
    )


def test_the_panel_shows_calls_and_advisers_per_hour_with_the_peak(page: Page) -> None:
    _render_panel(page)
    panel = page.locator("#forecast-panel")
    grid = panel.locator("table.forecast-grid")
    expect(grid.locator("thead th")).to_have_text(["Uur", "ma", "di", "wo", "do", "vr"])
    expect(grid.locator("tbody th")).to_have_count(8)  # 09:00 .. 17:00
    expect(grid.locator("tbody th").first).to_have_text("09:00-10:00")
    # 8 weeks: (4 x 12 + 4 x 24) / 8 = 18 calls an hour on Monday 10:00; Erlang C at 300 s and
    # 80/20: 4 advisers. It is the peak.
    monday = panel.locator("td[data-weekday='1'][data-hour='10']")
    expect(monday).to_have_text("18,0 / 4 piek")
    expect(monday).to_have_class("forecast-peak")
    expect(panel.locator(".forecast-peak")).to_have_count(1)
    expect(panel.locator("td[data-weekday='2'][data-hour='10']")).to_have_text("0,0 / 0")
    expect(panel.locator(".forecast-status")).to_contain_text(
        "Gemiddelde over 8 weken, 5 oktober 2026 t/m 29 november 2026"
    )
    expect(panel.locator(".forecast-status")).to_contain_text("standaardwaarde")
    expect(panel.locator(".forecast-peak-text")).to_have_text(
        "Piek: ma 10:00-11:00, 18,0 gesprekken per uur, 4 adviseurs."
    )


def test_the_pickers_ask_again_for_other_weeks_and_another_target(page: Page) -> None:
    _render_panel(page)
    panel = page.locator("#forecast-panel")
    monday = panel.locator("td[data-weekday='1'][data-hour='10']")
    expect(monday).to_have_text("18,0 / 4 piek")
    panel.get_by_label("Weken").select_option("4")  # November only: 24 calls an hour
    expect(monday).to_have_text("24,0 / 4 piek")
    panel.get_by_label("Doel").select_option("95/20")  # 95 % within 20 s needs one more
    expect(monday).to_have_text("24,0 / 5 piek")
    expect(panel.locator(".forecast-status")).to_contain_text("Doel: 95% binnen 20 seconden")


def test_a_refusal_is_explained_in_dutch(page: Page) -> None:
    _render_panel(page)
    panel = page.locator("#forecast-panel")
    expect(panel.locator("table.forecast-grid")).to_be_visible()
    # Signed out in another tab: the token is gone, the service refuses, the panel says why.
    page.evaluate("() => sessionStorage.removeItem('kcc.supervisor.token')")
    panel.get_by_label("Weken").select_option("12")
    expect(panel.locator(".forecast-error")).to_have_text("Je bent niet ingelogd. Log opnieuw in.")
    expect(panel.locator("table.forecast-grid")).to_have_count(0)
