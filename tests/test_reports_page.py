"""The reports page (/reports) in a real browser: headless Debian Chromium and Playwright.

A real `kcc serve` runs on a SQLite file holding the fixed call records of
tests/support/report_calls.py (November 2026). The supervisor signs in (the supervisor page's
header links here, with the same session), sees this month chosen, picks November and reads the
hand-worked figures in the tables; another grouping, product or period changes them; a CSV
button downloads the API's file with the table's rows; the charts are drawn on their canvases.
Every request that leaves the app is blocked (and fails the test).
"""

from __future__ import annotations

import calendar
import csv
import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from api.database.engine import make_engine
from tests.support.browser import Browser, Page, expect, open_page, open_signed_in
from tests.support.report_calls import AMSTERDAM, CALLS, NOVEMBER, add_calls
from tests.support.servers import KccServer, open_kcc_serve
from tests.support.staff import adviser, supervisor

pytestmark = pytest.mark.slow  # a real `kcc serve` and a browser

PASSWORD = "correct horse battery staple"
SUPERVISOR = supervisor("s.jansen", PASSWORD)
ADVISER = adviser("a.bakker", PASSWORD)
SECRET_KEY = "reports-page-test-secret-0123456789abcdef0123"
TITLE = "Rapportages - Justis klantcontactcentrum"
NOT_A_SUPERVISOR = "Dit account is geen supervisoraccount. Deze pagina is alleen voor supervisors."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KccServer]:
    with open_kcc_serve(
        tmp_path_factory.mktemp("reports"), secret_key=SECRET_KEY, staff=[SUPERVISOR, ADVISER]
    ) as served:
        engine = make_engine(served.database_url)
        try:
            add_calls(engine, CALLS)
        finally:
            engine.dispose()
        yield served


@pytest.fixture
def page(browser: Browser, server: KccServer) -> Iterator[Page]:
    with open_page(browser, server.url, width=1366, height=900) as opened:
        yield opened


def choose_period(page: Page, first: str, last: str) -> None:
    page.get_by_label("Van", exact=True).fill(first)
    page.get_by_label("Tot en met", exact=True).fill(last)
    page.get_by_role("button", name="Tonen").click()


def cell(page: Page, table: str, key: str, column: str) -> str:
    """The text of a table's cell: the row of `key` ("" for no key, "total" for the total)."""
    row = (
        f'[data-testid="table-{table}"] tfoot tr[data-total]'
        if key == "total"
        else f'[data-testid="table-{table}"] tbody tr[data-key="{key}"]'
    )
    return page.locator(f'{row} td[data-column="{column}"]').inner_text()


def row_labels(page: Page, table: str) -> list[str]:
    return page.locator(f'[data-testid="table-{table}"] tbody tr th').all_inner_texts()


def chart_values(page: Page, name: str) -> list[list[float | None]]:
    """The data of every dataset of the chart on the canvas, once Chart.js has drawn pixels."""
    canvas = page.get_by_test_id(f"chart-{name}")
    expect(canvas).to_be_visible()
    drawn = canvas.evaluate(
        """(canvas) => {
            const pixels = canvas.getContext("2d")
                .getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted += 1;
            return painted;
        }"""
    )
    assert drawn > 500, f"the {name} chart has not been drawn"
    values = canvas.evaluate(
        "(canvas) => window.Chart.getChart(canvas).data.datasets.map((d) => d.data)"
    )
    assert isinstance(values, list)
    return values


def this_month() -> tuple[str, str]:
    """The first and last day of the month it is now in Amsterdam."""
    today = datetime.now(AMSTERDAM).date()
    days = calendar.monthrange(today.year, today.month)[1]
    return today.replace(day=1).isoformat(), today.replace(day=days).isoformat()


def test_supervisor_reads_the_figures_changes_them_downloads_csv_and_sees_charts(
    page: Page, server: KccServer, tmp_path: Path
) -> None:
    # from the supervisor page's header, signed in there
    open_signed_in(page, "/supervisor", "Supervisor - Justis klantcontactcentrum", SUPERVISOR)
    page.get_by_test_id("reports-link").click()
    expect(page).to_have_title(TITLE)
    expect(page.get_by_test_id("user-name")).to_have_text(SUPERVISOR.name)  # no second sign-in
    expect(page.get_by_test_id("tools")).to_be_visible()
    first, last = this_month()
    expect(page.get_by_label("Van", exact=True)).to_have_value(first)
    expect(page.get_by_label("Tot en met", exact=True)).to_have_value(last)
    forecast = page.get_by_test_id("forecast-panel")
    expect(forecast.get_by_role("heading")).to_have_text("Prognose")
    # the staffing forecast's grid (GET /api/forecast): Monday to Friday, the opening hours
    grid = forecast.locator("table.forecast-grid")
    expect(grid.locator("thead th")).to_have_text(["Uur", "ma", "di", "wo", "do", "vr"])
    expect(grid.locator("tbody th").first).to_contain_text("09:00")

    choose_period(page, *NOVEMBER)
    # calls per product: labels from the flow, the hand-worked figures
    expect(
        page.locator('[data-testid="table-products"] tfoot td[data-column="calls"]')
    ).to_have_text("8")
    assert row_labels(page, "products") == [
        "Gedragsverklaring aanbesteden",
        "VOG natuurlijk persoon",
        "VOG rechtspersoon",
        "Geen product (in het menu beëindigd)",
    ]
    assert cell(page, "products", "vog_np", "offered") == "3"
    assert cell(page, "products", "vog_np", "service_level") == "66,7%"
    assert cell(page, "products", "vog_rp", "asa_seconds") == "–"
    assert cell(page, "products", "total", "service_level") == "50,0%"
    assert cell(page, "products", "total", "asa_seconds") == "22,5"
    assert cell(page, "products", "total", "aht_seconds") == "190,0"
    assert cell(page, "products", "", "ended_in_menu") == "1"
    # VOG NP's themes (the flow's first product is chosen)
    expect(page.get_by_label("Product", exact=True)).to_have_value("vog_np")
    assert row_labels(page, "themes") == ["Procedure", "Status aanvraag"]
    assert cell(page, "themes", "status", "self_service") == "1"
    # hours, weekdays, days (Amsterdam time), survey marks
    assert cell(page, "hours", "9", "calls") == "2"
    assert row_labels(page, "weekdays") == ["maandag", "dinsdag", "zaterdag", "zondag"]
    assert cell(page, "days", "2026-11-02", "service_level") == "50,0%"
    assert cell(page, "survey", "gva", "survey_average") == "10"
    assert cell(page, "survey", "total", "survey_average") == "8,33"

    # the charts are drawn, with the tables' figures
    assert chart_values(page, "products")[0] == [1, 4, 2, 1]  # calls
    assert chart_values(page, "hours")[0] == [1, 2, 1, 1, 2, 1]
    assert chart_values(page, "weekdays")[0] == [3, 2, 1, 2]
    assert chart_values(page, "days")[0] == [100, 50, 0, 100, None]  # service level, %
    assert chart_values(page, "survey")[0] == [10, 7.5]
    assert chart_values(page, "themes")[0] == [1, 3]

    # another grouping changes the chosen report at once
    page.get_by_label("Indeling").select_option("weekday")
    expect(page.locator('[data-testid="table-chosen"] tbody tr th').first).to_have_text("maandag")
    assert cell(page, "chosen", "7", "calls") == "2"

    # another product for the themes: the rows without a theme
    page.get_by_label("Product", exact=True).select_option("vog_rp")
    expect(page.locator('[data-testid="table-themes"] tbody tr th')).to_have_text(["Geen thema"])
    assert cell(page, "themes", "", "abandoned") == "2"

    # the CSV of the chosen report: the rows of the table and the total
    with page.expect_download() as download_info:
        page.get_by_test_id("csv-chosen").click()
    download = download_info.value
    assert download.suggested_filename == "kcc-report-weekday-2026-11-01-2026-11-30.csv"
    saved = tmp_path / "report.csv"
    download.save_as(saved)
    lines = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert [(line["weekday"], line["calls"]) for line in lines] == [
        ("1", "3"), ("2", "2"), ("6", "1"), ("7", "2"), ("(total)", "8"),
    ]  # fmt: skip

    # a shorter period changes every table; an empty one says so
    choose_period(page, "2026-11-02", "2026-11-02")
    expect(
        page.locator('[data-testid="table-products"] tfoot td[data-column="calls"]')
    ).to_have_text("3")
    assert row_labels(page, "products") == ["VOG natuurlijk persoon"]
    choose_period(page, "2026-01-01", "2026-01-31")
    expect(page.get_by_test_id("table-products").locator("tbody")).to_have_text(
        "Geen gesprekken in deze periode."
    )
    assert cell(page, "products", "total", "service_level") == "–"

    # a period the API refuses: the page says why, in Dutch
    choose_period(page, "2026-11-30", "2026-11-01")
    expect(page.get_by_test_id("error")).to_have_text("De begindatum ligt na de einddatum.")


def test_an_adviser_is_refused(page: Page, server: KccServer) -> None:
    open_signed_in(page, "/reports", TITLE, ADVISER)
    expect(page.get_by_test_id("error")).to_have_text(NOT_A_SUPERVISOR)
    expect(page.get_by_test_id("tools")).to_be_hidden()
