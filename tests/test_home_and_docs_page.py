"""The start page (/) and the API docs (/docs) in a real browser, with no internet.

A real `kcc serve` on the embedded stores; headless Debian Chromium (tests/support/browser.py)
blocks and counts every request that would leave the app: Swagger UI must come from the package.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pytest

from tests.conftest import SECRET_KEY
from tests.support.browser import Browser, Page, expect, open_page
from tests.support.servers import KccServer, open_kcc_serve

pytestmark = pytest.mark.slow  # a real `kcc serve` and a browser

SWAGGER_FILES = {
    "swagger-ui-bundle.js": "javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KccServer]:
    with open_kcc_serve(tmp_path_factory.mktemp("home"), secret_key=SECRET_KEY) as served:
        yield served


@pytest.fixture
def page(browser: Browser, server: KccServer) -> Iterator[Page]:
    with open_page(browser, server.url, width=1280, height=800) as opened:
        yield opened


class _Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


# -- over HTTP ---------------------------------------------------------------------------------


def test_the_start_page_is_dutch_html_without_inline_script(server: KccServer) -> None:
    answer = httpx.get(f"{server.url}/", timeout=5)

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    tags = _tags(answer.text)
    assert ("html", {"lang": "nl"}) in tags
    # Ready for a Content-Security-Policy without 'unsafe-inline': no script, no handlers,
    # no style attributes; the styles are files of the app.
    assert not [tag for tag, _ in tags if tag in {"script", "style"}]
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on") or a == "style"]
    sheets = [
        attrs["href"] for tag, attrs in tags if tag == "link" and attrs["rel"] == "stylesheet"
    ]
    assert sheets == ["/static/desk.css", "/static/home.css"]
    links = {attrs["href"] for tag, attrs in tags if tag == "a"}
    assert {"/desk", "/supervisor", "/docs"} <= links
    assert "klantcontactcentrum" in answer.text


def test_the_docs_load_swagger_ui_from_the_app_and_openapi_stays(server: KccServer) -> None:
    docs = httpx.get(f"{server.url}/docs", timeout=5)

    assert docs.status_code == 200
    assert "cdn." not in docs.text and "https://" not in docs.text
    for name, kind in SWAGGER_FILES.items():
        assert f"/static/vendor/swagger-ui/{name}" in docs.text
        asset = httpx.get(f"{server.url}/static/vendor/swagger-ui/{name}", timeout=5)
        assert asset.status_code == 200, name
        assert kind in asset.headers["content-type"], name
    assert httpx.get(f"{server.url}/openapi.json", timeout=5).json()["info"]["title"] == "kcc-ivr"
    assert httpx.get(f"{server.url}/redoc", timeout=5).status_code == 404  # from a CDN: off


# -- in the browser ----------------------------------------------------------------------------


def test_the_start_page_links_the_desk_the_supervisor_page_and_the_docs(
    page: Page, server: KccServer
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/")
    expect(page.get_by_role("heading", name="kcc-ivr", exact=True)).to_be_visible()

    page.get_by_role("link", name="Adviseursdesk").click()
    expect(page).to_have_url(re.compile(r"/desk$"))
    expect(page.get_by_test_id("login")).to_be_visible()

    page.go_back()
    page.get_by_role("link", name="Supervisor").click()
    expect(page).to_have_url(re.compile(r"/supervisor$"))
    expect(page.get_by_role("heading", name="Inloggen")).to_be_visible()

    page.go_back()
    page.get_by_role("link", name="API-documentatie").click()
    expect(page).to_have_url(re.compile(r"/docs$"))
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()

    assert [url for url in requested if not url.startswith((server.url, "data:"))] == []


def test_the_docs_render_the_operations_without_internet(page: Page, server: KccServer) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto("/docs")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("kcc-ivr")
    hours = page.locator(".opblock", has=page.locator("[data-path='/api/hours']"))
    expect(hours).to_be_visible()
    hours.locator(".opblock-summary").first.click()  # opens: the parameters of the operation
    expect(hours.locator(".parameters").get_by_text("lang", exact=True)).to_be_visible()
    assert page.locator(".swagger-ui .opblock").count() > 10
    assert any(url.endswith("/static/vendor/swagger-ui/swagger-ui-bundle.js") for url in requested)
    assert any(url.endswith("/openapi.json") for url in requested)
    assert [url for url in requested if not url.startswith((server.url, "data:"))] == []
